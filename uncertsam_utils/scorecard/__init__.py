"""The claims scorecard (``tables/claims.*``) and the README section generated from it."""

from .claims import ORDER, VERDICTS, Claim, read_claims, update_claims, write_claims
from .readme import render_section, update_readme

__all__ = ["Claim", "ORDER", "VERDICTS", "read_claims", "update_claims", "write_claims", "render_section",
           "update_readme"]
