"""The artifact store: manifests, hashing, atomic writes, safetensors / npy / parquet."""
from expunge.store.store import Artifact, Store, diff

__all__ = ["Artifact", "Store", "diff"]
