from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from proxyfixtures import anvil, api_url, control, echo, rpc_server  # noqa: F401
