"""Ready-made `mapping:` settings for the calendar exports people actually have.

A preset is an ordinary mapping config; the user's `mapping:` keys override the preset's key by key
(a field given by the user replaces the preset's field entirely; `null` unmaps it). The schema is
described in bulkmeet/mapping/__init__.py.
"""

from __future__ import annotations

from typing import Any, Final

_US_TIMES: Final = ["%I:%M:%S %p", "%I:%M %p"]

PRESETS: Final[dict[str, dict[str, Any]]] = {
    # Outlook (classic) "Export to a file" → CSV of a calendar folder. Dates follow the Windows
    # locale; these are the US defaults (3/15/2024, 2:30:00 PM). Attendees are `;`-separated and
    # usually display names only, so an invitee_directory is needed for them.
    "outlook": {
        "title": "Subject",
        "startTime": {
            "date": "Start Date", "time": "Start Time",
            "date_format": "%m/%d/%Y", "time_format": _US_TIMES,
        },
        "endTime": {
            "date": "End Date", "time": "End Time",
            "date_format": "%m/%d/%Y", "time_format": _US_TIMES,
        },
        "organizerEmail": "Meeting Organizer",
        "invitees": {"columns": ["Required Attendees", "Optional Attendees"], "separator": ";"},
        "all_day_column": "All day event",
        # Outlook lists the organizer among the attendees; Gong wants them apart.
        "organizer_in_invitees": "drop",
    },
    # Google Calendar's CSV (the Outlook-compatible import/export layout): no organizer, no
    # attendees.
    "google": {
        "title": "Subject",
        "startTime": {
            "date": "Start Date", "time": "Start Time",
            "date_format": "%m/%d/%Y", "time_format": _US_TIMES,
        },
        "endTime": {
            "date": "End Date", "time": "End Time",
            "date_format": "%m/%d/%Y", "time_format": _US_TIMES,
        },
        "all_day_column": "All Day Event",
    },
    # Salesforce Event export (Data Loader / Data Export): ActivityDateTime plus DurationInMinutes;
    # OwnerId and WhoId are record ids, not emails. Salesforce stores date-times in UTC and its
    # data exports write them so ("2023-01-18T15:00:00.000Z", or "2023-01-18 15:00:00" with no
    # offset at all): a time without an offset is UTC here. (A *report* export writes the
    # user's own zone instead: pass --timezone for it.)
    "salesforce": {
        "export_timezone": "UTC",
        "title": "Subject",
        "startTime": "ActivityDateTime",
        "endTime": {"duration_minutes": "DurationInMinutes"},
        "externalId": "Id",
        "all_day_column": "IsAllDayEvent",
    },
}

PRESET_HINTS: Final[dict[str, dict[str, str]]] = {
    "google": {
        "organizerEmail": "Google Calendar's CSV export has no organizer column; pass "
        "--organizer you@example.com, or set mapping.organizerEmail: {const: you@example.com} "
        "(or a column of your own)",
    },
    "salesforce": {
        "organizerEmail": "Salesforce exports OwnerId, a user id, not an email; set "
        "mapping.organizerEmail: {column: OwnerId, directory: owners.csv} (a CSV of OwnerId,email) "
        "or mapping.organizerEmail: {const: you@example.com}, or pass --organizer you@example.com",
    },
}
"""Per preset and API field: what to tell the user when the preset cannot fill a required field."""
