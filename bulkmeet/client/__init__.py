"""The Gong client: credentials, one aiohttp session, and HTTP answers turned into outcomes.

Nothing above this package sees an aiohttp type: every answer or failure becomes one of the
outcome values (httpx maps httpcore's exceptions at its edge the same way).

The package, one module per part: credentials.py (Credentials, kept out of every log),
outcomes.py (the outcome values, classify, parse_retry_after), transport.py (aiohttp's
failures as outcomes, bounded body reading), gong.py (GongClient) and backoff.py.
"""

from .backoff import backoff_delay as backoff_delay
from .credentials import Credentials as Credentials
from .gong import MEETINGS_PATH as MEETINGS_PATH
from .gong import STATUS_PATH as STATUS_PATH
from .gong import USER_AGENT as USER_AGENT
from .gong import GongClient as GongClient
from .outcomes import MAX_BODY as MAX_BODY
from .outcomes import MAX_RETRY_AFTER as MAX_RETRY_AFTER
from .outcomes import TOO_LONG as TOO_LONG
from .outcomes import TRANSPORT_KINDS as TRANSPORT_KINDS
from .outcomes import Lost as Lost
from .outcomes import Outcome as Outcome
from .outcomes import RateLimited as RateLimited
from .outcomes import Rejected as Rejected
from .outcomes import Retryable as Retryable
from .outcomes import Succeeded as Succeeded
from .outcomes import classify as classify
from .outcomes import is_gong_error as is_gong_error
from .outcomes import parse_retry_after as parse_retry_after
from .transport import transport_failure as transport_failure
