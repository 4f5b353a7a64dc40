"""Fleets of models of one kind (shadow, retrain, unlearned): membership and member training.

The core trains one member (no Ray); ``expunge.runtime.fleet`` runs members in parallel.
"""
from expunge.fleet.membership import balanced_member, membership_matrix, out_only_subset

__all__ = ["balanced_member", "membership_matrix", "out_only_subset"]
