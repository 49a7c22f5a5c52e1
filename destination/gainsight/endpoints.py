"""Gainsight paths, header names and fixed values (DESIGN §3, reference/gainsight-api.md). No logic."""

PEOPLE_PATH = "/v1.0/api/people"
COMPANY_QUERY_PATH = "/v1/data/objects/query/Company"
COMPANY_PATH = "/v1/data/objects/Company"
EVENT_PATH = "/v1.0/api/eventManager/event"
ACTIVITY_PATH = "/v1/ant/es/activity"  # Timeline single-activity save (reference §8)
OBJECTS_PATH = "/v1/data/objects"  # + "/{Object}": custom objects (usage counts) on Company's paths
OBJECTS_QUERY_PATH = "/v1/data/objects/query"

ACCESS_KEY_HEADER = "Accesskey"
SHARED_SECRET_HEADER = "sharedSecret"
SIGNATURE_HEADER = "X-Payload-Signature"
JSON_CONTENT_TYPE = "application/json"

# Header values that are credentials (or signed with one): "***" wherever a request is shown.
SECRET_HEADERS = frozenset({ACCESS_KEY_HEADER, SHARED_SECRET_HEADER, SIGNATURE_HEADER})
REDACTED = "***"

SIGNATURE_ALGORITHM = "HS256"
SIGNATURE_TTL_SECONDS = 300

# Company writes carry at most this many records per call.
MAX_RECORDS_PER_CALL = 50

# A receiver that verifies X-Payload-Signature answers a second token with the same jti (our
# messageId) with this code: the event already arrived, e.g. before a timed-out first try gave up.
REPLAYED_SIGNATURE_CODE = "GSSIG_REPLAY"

# People upsert naming a company Gsid that does not exist (reference §3.4).
UNKNOWN_COMPANY_CODE = "GSOBJ_PEOPLE1001"

CONTRACT_ID_EXTERNAL_TYPE = "gainsightEventContractId"


def public_url(domain: str, path: str) -> str:
    return f"https://{domain}{path}"
