"""The `math` verifier: is the final answer of a completion equal to the gold answer?

Built on Math-Verify and sympy; every comparison runs in a pool worker, or inline in a host's
killable worker, a process that is killed and replaced when it passes the comparison's deadline.
"""

from rewards.math.extract import extract_answer
from rewards.math.verifier import MathConfig, MathVerifier

__all__ = ["MathConfig", "MathVerifier", "extract_answer"]
