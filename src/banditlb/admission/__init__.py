"""What we believe about each upstream's capacity: does it admit now, and when next?

The admission layer is tower's `Load` to the choosers' `p2c`: it never ranks
servers by quality, and the choosers never decide whether a server admits. It
answers the router's three questions (which servers are ready now, each one's
chance of admitting now, the earliest time each is expected to admit) and is
the state several balancer processes can share. Pure: time is given.
"""

from banditlb.admission.base import Admission, Open
from banditlb.admission.holds import Block, Mask
from banditlb.admission.pacing import Pacing
from banditlb.admission.truth import TrueCapacity

__all__ = ["Admission", "Block", "Mask", "Open", "Pacing", "TrueCapacity"]
