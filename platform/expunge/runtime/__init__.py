"""Everything that imports Ray: local start-up, stages as tasks (later: fleets, Train, Tune)."""
from expunge.distributed.ray_env import LOCAL_ENV, init_ray
from expunge.distributed.tasks import run_tasks

__all__ = ["LOCAL_ENV", "init_ray", "run_tasks"]
