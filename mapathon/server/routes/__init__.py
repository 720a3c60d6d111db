"""The room server's routes, one FastAPI ``APIRouter`` per part of the API; server/app.py assembles them.
Each route finds the room with :func:`..room.room_of` and leaves the rules and the SQL to the project's modules."""
