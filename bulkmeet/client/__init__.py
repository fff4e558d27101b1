"""The Gong client (being split into a package; see gong.py for now)."""

from .gong import MAX_BODY as MAX_BODY
from .gong import MAX_RETRY_AFTER as MAX_RETRY_AFTER
from .gong import MEETINGS_PATH as MEETINGS_PATH
from .gong import STATUS_PATH as STATUS_PATH
from .gong import TOO_LONG as TOO_LONG
from .gong import TRANSPORT_KINDS as TRANSPORT_KINDS
from .gong import USER_AGENT as USER_AGENT
from .gong import Credentials as Credentials
from .gong import GongClient as GongClient
from .gong import Lost as Lost
from .gong import Outcome as Outcome
from .gong import RateLimited as RateLimited
from .gong import Rejected as Rejected
from .gong import Retryable as Retryable
from .gong import Succeeded as Succeeded
from .gong import backoff_delay as backoff_delay
from .gong import classify as classify
from .gong import is_gong_error as is_gong_error
from .gong import parse_retry_after as parse_retry_after
from .gong import transport_failure as transport_failure
