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
  --radius 2000 --organizer "Mariam Diallo"

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

say "Done: see $OUT"
ls -R "$OUT" | head -40
