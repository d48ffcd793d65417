"""A module with an import side effect: the hostile-channel tests prove that a
message naming one of its classes never gets it imported (unless allowed)."""

from __future__ import annotations

import dataclasses
import os

os.environ["EVENTSPYPE_REDIS_SIDE_EFFECT"] = "imported"


@dataclasses.dataclass
class Planted:
    value: int
