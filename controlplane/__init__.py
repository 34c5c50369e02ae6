import os

# Tiny matrices (embeddings, classifiers) on few cores: multi-threaded BLAS only spins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from controlplane.celery import app as celery_app

__all__ = ["celery_app"]
