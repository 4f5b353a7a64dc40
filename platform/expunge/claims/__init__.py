"""``expunge reproduce``: the seed papers' claims, the protocols that test them, and the verdicts."""
from expunge.claims.protocols import PROTOCOLS, Protocol
from expunge.claims.verdicts import NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED, ClaimRow

__all__ = ["NOT_REPRODUCED", "NOT_TESTABLE", "PROTOCOLS", "REPRODUCED", "ClaimRow", "Protocol"]
