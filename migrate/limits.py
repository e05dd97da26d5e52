"""The Conversations API's limits, in one place: what one call and one conversation may hold.

Sources: the official OpenAPI spec (`maxItems`, `maxLength`, metadata rules) and the real
API's error messages in recorded traffic. The planner, the replayer and the local server all
read these, so a limit can only change here.
"""

from __future__ import annotations

MAX_ITEMS_PER_CALL = 20
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_CALL_ID_CHARS = 64
MAX_TOOL_NAME_CHARS = 128
MAX_OUTPUT_CHARS = 10_485_760
MAX_INPUT_TEXT_CHARS = 10_485_760
MAX_IMAGE_URL_CHARS = 20_971_520
MAX_FILE_DATA_CHARS = 73_400_320
