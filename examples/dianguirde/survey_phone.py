"""Plays ODK Collect for the demo: sends a few filled water-point forms to the room server's /odk,
as a phone on the laptop's Wi-Fi would (HEAD pre-flight, Digest sign-in, multipart with a photo).

    python3 survey_phone.py http://127.0.0.1:PORT/odk "Awa Traoré" PASSWORD
"""

from __future__ import annotations

import csv
import io
import sys
import uuid
import xml.etree.ElementTree as ET

import requests
from requests.auth import HTTPDigestAuth

url, name, password = sys.argv[1:4]
auth = HTTPDigestAuth(name, password)
head = {"X-OpenRosa-Version": "1.0"}
forms = ET.fromstring(requests.get(url + "/formList", auth=auth, headers=head, timeout=30).content)
ns = {"x": "http://openrosa.org/xforms/xformsList"}
form = next(f for f in forms.findall("x:xform", ns) if f.find("x:formID", ns).text == "water_points")
version = form.find("x:version", ns).text
# the wells already on the map: the form's entity list (its manifest names it), as Collect downloads it
manifest = ET.fromstring(requests.get(form.find("x:manifestUrl", ns).text, auth=auth, headers=head, timeout=30).content)
media = {"m": "http://openrosa.org/xforms/xformsManifest"}
wells = {}
for m in manifest.findall("m:mediaFile", media):
    if m.get("type") == "entityList":
        text = requests.get(m.find("m:downloadUrl", media).text, auth=auth, headers=head, timeout=30).text
        wells = {row["osm_id"]: row["name"] for row in csv.DictReader(io.StringIO(text))}
# a few wells around Dianguirdé: one picked on the map (the 2019 well), two new ones
visits = [("node/4561949658", 14.49314, -9.01396, "borehole", "manual", "working", "yes"),
          ("", 14.49620, -9.01180, "well", "no", "dry", "yes"),
          ("", 14.48900, -9.01800, "well", "manual", "broken", "no")]
for picked, lat, lon, kind, pump, state, seasonal in visits:
    iid = f"uuid:{uuid.uuid4()}"
    # a well picked on the map is an entity of the list, which the form updates (as Collect fills it in)
    entity_id = wells.get(picked, picked)
    entity = (f'<entity dataset="water_points" id="{entity_id}" update="1" baseVersion="1" trunkVersion="" '
              f'branchId=""/>' if picked else
              '<entity dataset="water_points" id="" update="0" baseVersion="" trunkVersion="" branchId=""/>')
    xml = f"""<?xml version='1.0' ?><data id="water_points" version="{version}"><username>{name}</username>
<existing>{entity_id}</existing><location>{lat} {lon} 300 5</location><kind>{kind}</kind><pump>{pump}</pump>
<operational>{state}</operational><seasonal>{seasonal}</seasonal><drinking>yes</drinking><access>yes</access>
<depth/><name/><contact/><photo>well.jpg</photo><meta>{entity}<instanceID>{iid}</instanceID></meta></data>"""
    assert requests.head(url + "/submission", auth=auth, headers=head, timeout=30).status_code == 204
    r = requests.post(url + "/submission", auth=auth, headers=head, timeout=60, files=[
        ("xml_submission_file", ("submission.xml", xml.encode(), "text/xml")),
        ("well.jpg", ("well.jpg", b"\xff\xd8\xff\xe0 a photo of the well", "image/jpeg"))])
    print(r.status_code, ET.fromstring(r.content)[0].text)
