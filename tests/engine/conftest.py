import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # chainctx, shared by the engine tests
