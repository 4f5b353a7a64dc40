"""Hyperparameter sweeps over unlearning methods (Ray Tune), scored against the retrained model.

``objective`` holds the pure scoring rules (gaps, weighted objectives, constraints, Pareto front);
``trial`` is one Tune trial (unlearn + audit from cached outputs); ``runner`` drives the Tuners and
writes the results; ``plots`` draws them.
"""
from expunge.sweep.objective import Constraint, objective_value, pareto_front, trial_row

__all__ = ["Constraint", "objective_value", "pareto_front", "trial_row"]
