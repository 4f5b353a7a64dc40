"""The Ray layer: local start-up and the reaper, stages as tasks, Ray Train for the original, Tune glue."""
from expunge.runtime.ray_env import LOCAL_ENV, init_ray
from expunge.runtime.tasks import run_tasks

__all__ = ["LOCAL_ENV", "init_ray", "run_tasks"]
