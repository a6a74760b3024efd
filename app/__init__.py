"""The Prompt-OIRL HTTP service (FastAPI), thin over the ``oirl`` library."""

import os

# Torch and LightGBM each run OpenMP thread teams from the same process. With the default
# spin-waiting, idle team threads burn the CPU the other one needs; on a busy 2-core machine
# that made single-query selection 10-20x slower (measured: ~500 ms vs ~30 ms). Passive
# waiting must be set before either library starts its threads, hence here; env overrides.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
