"""Engines placed on a Ray cluster: each runs as a Ray Serve application whose replicas
load the engine's own class, behind a proxy that keeps the engine contract.

``proxy.py`` is the engine in the server; ``replica.py`` what runs on the nodes;
``cluster.py`` joining the cluster and each engine's application; ``voices.py``
library voices sent by content; ``watch.py`` replicas and voices read off the event
loop. See docs/ray.md.
"""

import os

# Read when ray is imported: without it, Ray's driver catches SIGTERM itself and aborts
# the process three seconds later, cutting the server's own shutdown short.
os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")
