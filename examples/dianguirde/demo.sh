#!/usr/bin/env bash
# The Dianguirdé demo: a whole mapathon, offline, on real data.
#   bash examples/dianguirde/demo.sh OUTPUT_FOLDER     (make demo runs it into demo-out/)
# Data: © OpenStreetMap contributors, ODbL 1.0.
set -euo pipefail

OUT=${1:-demo-out}
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$OUT"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export MAPATHON_PROJECT="$OUT/dianguirde"
export COLUMNS=${COLUMNS:-150}
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1. The organizer creates the project from the 14 villages (2 km around each)"
mapathon init "$MAPATHON_PROJECT" --name "Dianguirdé" --aoi "$HERE/dianguirde-villages.csv" \
  --radius 2000 --organizer "Mariam Diallo" --lang fr

say "2. The imagery grid: web-mercator tiles at zoom 16, as the Tasking Manager makes them"
mapathon grid --zoom 16
mapathon info

say "3. Volunteers and validators"
mapathon volunteer add "Seydou Keïta" --validator --osm-user seydou_k --as "Mariam Diallo"
mapathon volunteer add "Awa Traoré" --osm-user awa_t --validator --as "Mariam Diallo"
mapathon volunteer add "Bakary Coulibaly"
mapathon volunteer add "Fanta Sissoko"
mapathon volunteer list

say "4. The mapathon evening"
mapathon claim --next --village Dianguirdé --as "Awa Traoré"
AWA=$(mapathon tasks --state LOCKED_FOR_MAPPING --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
mapathon claim --next --village Torodo --as "Bakary Coulibaly"
mapathon claim --next --village Dianguirdé --as "Fanta Sissoko"
mapathon done "$AWA" --as "Awa Traoré" -m "houses and the track to the well"
mapathon claim --next --village Dianguirdé --as "Awa Traoré"
mapathon tasks --state LOCKED_FOR_MAPPING

# Bakary finds his square too big and splits it; Fanta's square is under clouds.
BAKARY=$(mapathon tasks --state LOCKED_FOR_MAPPING --village Torodo --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
mapathon split "$BAKARY" --as "Bakary Coulibaly" -m "too many houses for one evening"
FANTA=$(mapathon tasks --json | python3 -c 'import json,sys; print([t["id"] for t in json.load(sys.stdin) if t["locked_by"] == "Fanta Sissoko"][0])')
mapathon badimagery "$FANTA" --as "Fanta Sissoko" -m "clouds over half the square"

# Bakary maps two of the four smaller squares.
for i in 1 2; do
  mapathon claim --next --village Torodo --as "Bakary Coulibaly"
  T=$(mapathon tasks --json | python3 -c 'import json,sys; print([t["id"] for t in json.load(sys.stdin) if t["locked_by"] == "Bakary Coulibaly"][0])')
  mapathon done "$T" --as "Bakary Coulibaly"
done

say "5. Validation (nobody validates their own work)"
mapathon validate "$AWA" --as "Awa Traoré" --accept || echo "(refused, as it should be)"
mapathon validate "$AWA" --as "Seydou Keïta" --accept -m "good, square buildings"
SECOND=$(mapathon tasks --state MAPPED --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
mapathon validate "$SECOND" --as "Seydou Keïta" --reject -m "missing the track to the north"
mapathon history "$SECOND"

say "6. Progress, for the projector and for scripts"
mapathon status | tee "$OUT/status.txt"
mapathon status --json > "$OUT/status.json"
mapathon status --map "$OUT/progress.png"

say "7. Exports: QGIS, JOSM, GPS units, spreadsheets"
mkdir -p "$OUT/exports/shapefile"
for fmt in geojson gpkg gpx osm csv; do
  mapathon export tasks -o "$OUT/exports/tasks.$fmt"
done
mapathon export tasks --format shp -o "$OUT/exports/shapefile/tasks.shp"

say "8. The volunteers' files: collected, merged onto the 2019 data, checked, credited"
# JOSM files as three volunteers saved them for their tasks, around the real village coordinates:
# new ids start at -1 in every file, the same house is drawn on both sides of a task border,
# and the 2019 borehole is edited by two volunteers (see make_contributions.py).
python3 "$HERE/make_contributions.py" "$OUT/contributions"
while IFS=$'\t' read -r FILE WHO TASK; do
  # only the volunteer who holds (or mapped) a square hands in files for it: claim it if it is free
  mapathon claim "$TASK" --as "$WHO" > /dev/null 2>&1 || true
  mapathon submit "$FILE" --as "$WHO" --task "$TASK"
done < "$OUT/contributions/contributions.tsv"
FIRST=$(head -1 "$OUT/contributions/contributions.tsv" | cut -f1)
mapathon submit "$FIRST" --as "Awa Traoré"   # the same file again: recorded once
# Merge onto the 2019 points: the snapshot, the upload files, and the checks and credit of the work.
mapathon merge --base "$HERE/dianguirde-area-pois-osm2019.osm.pbf" -o "$OUT/merged.osm.pbf" \
  --upload "$OUT/changes.osc" --josm "$OUT/changes-for-josm.osm" --upload-per-volunteer "$OUT/upload-per-volunteer" \
  --html "$OUT/report.html" --geojson "$OUT/findings.geojson"
# The same, for scripts: every finding with its task, village and volunteer; the credit figures.
mapathon check "$OUT/merged.osm.pbf" --json > "$OUT/findings.json"
mapathon report --base "$HERE/dianguirde-area-pois-osm2019.osm.pbf" --json > "$OUT/report.json"
if command -v ogrinfo > /dev/null; then ogrinfo -so -al "$OUT/findings.geojson" | grep -E "Feature Count|Geometry"; fi
echo "Open $OUT/report.html in a browser, and $OUT/findings.geojson in JOSM or QGIS."
# The wells, for the field team's phones (OsmAnd, Organic Maps) and GPS units
mapathon export data --kind wells -o "$OUT/exports/wells.gpx"
mapathon export data --kind wells -o "$OUT/exports/wells.kml"
mapathon export data --kind all --csv-dialect excel-fr -o "$OUT/exports/data-excel-fr.csv"

say "9. Imagery: what the area needs, what buying it would cost, an offline cache for the editors"
mapathon imagery plan --zoom 16-19 --min-order-km2 25
mapathon imagery plan --village Dianguirdé --zoom 16-19
# A stand-in for a real imagery server, on this computer only: the demo needs no internet.
python3 "$HERE/../../tests/tileserver.py" > "$OUT/tileserver.txt" &
TILES_PID=$!
trap 'kill $TILES_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q PORT "$OUT/tileserver.txt" 2>/dev/null && break; sleep 0.1; done
TILES_PORT=$(awk '/PORT/ {print $2}' "$OUT/tileserver.txt")
mapathon imagery add demo-tiles "tms[0,20]:http://127.0.0.1:$TILES_PORT/{zoom}/{x}/{y}.jpg" \
  --attribution "generated demo tiles" --default
mapathon imagery fetch --village Dianguirdé --zoom 16-17 --workers 4
mapathon imagery fetch --village Dianguirdé --zoom 16-17   # run again: nothing left to fetch
kill $TILES_PID 2>/dev/null || true
mapathon imagery list
# What a volunteer's JOSM or iD receives for Awa's task (with 'mapathon imagery serve' running)
mapathon josm "$AWA"
mapathon id-url "$AWA"

say "10. Paper maps for the field teams: the Dianguirdé atlas in French, and one village for phones"
# From the project's merged data (merged/latest.osm.pbf) when there is one, else from the 2019 extract.
DATA_OPT=()
[ -f "$MAPATHON_PROJECT/merged/latest.osm.pbf" ] || DATA_OPT=(--data "$HERE/dianguirde-area-pois-osm2019.osm.pbf")
mapathon print ${DATA_OPT[@]+"${DATA_OPT[@]}"} --lang fr --paper A4 --scale 1:5000 --tasks-overlay \
  -o "$OUT/atlas-dianguirde.pdf"
mkdir -p "$OUT/phone"
mapathon print ${DATA_OPT[@]+"${DATA_OPT[@]}"} --village Dianguirdé --format png -o "$OUT/phone/dianguirde.png"
if [ -f "$MAPATHON_PROJECT/imagery/demo-tiles.mbtiles" ]; then  # the imagery cached in step 8, under the map
  mapathon print ${DATA_OPT[@]+"${DATA_OPT[@]}"} --village Dianguirdé --grayscale \
    --imagery "$MAPATHON_PROJECT/imagery/demo-tiles.mbtiles" -o "$OUT/atlas-dianguirde-imagery.pdf"
fi

say "11. Field survey with ODK Collect: the laptop is the survey server"
# the wells already mapped go with the form, to pick on the phone's map (from the latest merge, else the 2019 extract)
BASE_OPT=()
[ -f "$MAPATHON_PROJECT/merged/latest.osm.pbf" ] || BASE_OPT=(--data "$HERE/dianguirde-area-pois-osm2019.osm.pbf")
mapathon survey form ${BASE_OPT[@]+"${BASE_OPT[@]}"} --preset water --lang fr,en,bm -o "$OUT/survey-water.xlsx"
ODK_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mapathon serve --host 127.0.0.1 --port "$ODK_PORT" > "$OUT/serve.txt" 2>&1 &
SERVE_PID=$!
trap 'kill $TILES_PID $SERVE_PID 2>/dev/null || true' EXIT
for _ in $(seq 300); do grep -q "Stop with" "$OUT/serve.txt" 2>/dev/null && break; sleep 0.1; done
grep "ODK Collect" "$OUT/serve.txt"
ODK_PASSWORD=$(sed -n 's/.*password: \([a-z0-9]*\)).*/\1/p' "$OUT/serve.txt")
# three forms filled in by Awa's phone, sent over the Wi-Fi (here: played by a small script)
python3 "$HERE/survey_phone.py" "http://127.0.0.1:$ODK_PORT/odk" "Awa Traoré" "$ODK_PASSWORD"
kill $SERVE_PID 2>/dev/null || true
mapathon survey list
# the answers matched with the mapped wells, merged with the volunteers' work, and the donors' table
mapathon survey merge --geojson "$OUT/survey-findings.geojson"
mapathon merge --base "$HERE/dianguirde-area-pois-osm2019.osm.pbf" -o "$OUT/merged-with-survey.osm.pbf" \
  --upload "$OUT/changes-with-survey.osc" > /dev/null
mapathon report water --html "$OUT/water-report.html" --csv "$OUT/water-report.csv"

say "12. Paper comes back: photos of annotated atlas pages, placed offline, the ink marks turned into data"
# two phone photos of the field team's pages, with pen marks on them (a stand-in for the field team)
mapathon print --village Dianguirdé --lang fr -o "$OUT/atlas-field-team.pdf"   # the field team's pages
python3 "$HERE/make_photos.py" "$OUT/atlas-field-team.pdf" "$OUT/photos"
mapathon scan "$OUT/photos/page-2.jpg" "$OUT/photos/page-3.jpg" --as "Seydou Keïta" -o "$OUT/scans"
mapathon status

say "Done: see $OUT"
ls -R "$OUT" | head -40
