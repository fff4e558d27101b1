"""Ready-made `mapping:` settings for the calendar exports people actually have.

A preset is an ordinary mapping config; the user's `mapping:` keys override the preset's key by key
(a field given by the user replaces the preset's field entirely; `null` unmaps it). The schema is
described in bulkmeet/mapping/__init__.py.
"""

from __future__ import annotations

from typing import Any, Final

_US_TIMES: Final = ["%I:%M:%S %p", "%I:%M %p"]
_24H_TIMES: Final = ["%H:%M:%S", "%H:%M"]

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
    # The same export from a German Outlook: German column names, dd.mm.yyyy dates, 24-hour
    # times, the all-day flag as Ein/Aus; usually saved as cp1252 with `;` between fields
    # (pass --encoding cp1252; the delimiter is sniffed).
    "outlook-de": {
        "title": "Betreff",
        "startTime": {
            "date": "Beginnt am", "time": "Beginnt um",
            "date_format": "%d.%m.%Y", "time_format": _24H_TIMES,
        },
        "endTime": {
            "date": "Endet am", "time": "Endet um",
            "date_format": "%d.%m.%Y", "time_format": _24H_TIMES,
        },
        "organizerEmail": "Besprechungsplanung",
        "invitees": {"columns": ["Erforderliche Teilnehmer", "Optionale Teilnehmer"],
                     "separator": ";"},
        "all_day_column": "Ganztägiges Ereignis",
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


# Columns that only a preset's export layout has together: a header holding all of one set is
# that export, and an error about missing columns names the preset (first match wins).
LAYOUTS: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    ("outlook", frozenset({"Subject", "Start Date", "Start Time", "End Date", "End Time",
                           "Meeting Organizer", "Required Attendees"})),
    ("outlook-de", frozenset({"Betreff", "Beginnt am", "Beginnt um", "Endet am", "Endet um"})),
    ("google", frozenset({"Subject", "Start Date", "Start Time", "End Date", "End Time",
                          "All Day Event"})),
    ("salesforce", frozenset({"Subject", "ActivityDateTime", "DurationInMinutes", "OwnerId"})),
)


def layout_of(columns: object) -> str | None:
    """The preset whose export layout `columns` (a header) is, or None."""
    if not isinstance(columns, list | tuple):
        return None
    present = {str(c).strip() for c in columns}
    return next((name for name, needed in LAYOUTS if needed <= present), None)
