"""Progress: overall and per village, and the volunteers' leaderboard (the board's data)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from ...tasks import progress
from ..room import room_of

router = APIRouter(tags=["progress"])


@router.get("/api/status", summary="Progress overall and per village, and the volunteers' leaderboard")
async def status(request: Request):
    st = await room_of(request).change(progress.status)  # status releases expired locks first: a change
    out = st.as_dict()
    out["outside"] = progress.NO_VILLAGE  # the row of tasks outside every village (named in the page's words)
    out["board"] = sorted(({"name": v.name, "mapped": v.mapped, "validated": v.validated}
                           for v in st.volunteers if v.mapped or v.validated),
                          key=lambda v: (-v["mapped"], -v["validated"], v["name"].casefold()))
    return JSONResponse(out)
