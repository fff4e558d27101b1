"""Row -> Gong meeting payload (NewMeetingRequest), with every validation error named.

`Mapper.from_config(cfg).map(raw)` turns one `RawRow` into one `Row`: a payload ready to POST, or
every reason the row is invalid. Each error names the line, the column (or setting), the API field
and the value: `line 5, column 'Start' (startTime): '2024-13-01 10:00' is not an ISO-8601 time`.
The mapping is compiled once, in the constructor (a bad one raises ConfigError naming the key, e.g.
`mapping.startTime`); `map` never raises.

The `mapping:` config, every key optional, shown with its default::

    mapping:
      preset: null               # outlook | outlook-de | google | salesforce; keys below win
      export_timezone: null      # the zone the export writes zone-less times in (salesforce: UTC)
      # One entry per API field. A plain string is a column name (the simple rename form).
      startTime: startTime       # an ISO-8601 column, or {column: X, format: "%d.%m.%Y %H:%M"}
                                 # (format: one strptime format or a list), or a date column
                                 # plus a time column: {date: X, time: Y, date_format: "%m/%d/%Y",
                                 # time_format: ["%I:%M:%S %p", "%I:%M %p"]} (default ISO)
      endTime: endTime           # as startTime, or {duration_minutes: X}: start + X minutes
      title: title               # a column, {const: "Demo"} or {template: "{Subject} - {Account}"}
      organizerEmail: organizerEmail   # a column, a const or a template, plus an optional
                                 # directory: (CSV path | {value: email}) for names or ids
      invitees: invitees         # a column, {columns: [A, B]}, {const: [...]} or a template, plus
                                 # optional separator: ";" (default ; and ,) and directory:
      externalId: externalId     # a column, a const or a template
      timezone_column: null      # a column of IANA zone names; an empty cell -> config `timezone`
      invitee_directory: null    # CSV path (name,email; header optional) or {name: email}
      unresolved_invitees: error # error | drop (dropped with a warning)
      organizer_in_invitees: error     # error | drop (dropped silently)
      all_day_column: null       # a column of true/false words (Outlook's in EN, DE, FR, ES, NL)
      all_day: reject            # reject | skip | allow (local midnight to midnight)
      filter:                    # a condition or a list of them; any one that matches skips
        skip_if: {column: Canceled, equals: ["true", "yes", "1"]}   # case-insensitive, stripped

`null` unmaps a field: title and externalId are then left out, invitees is []. Relative directory
paths are read from the working directory.

Presets (bulkmeet/presets.py holds them in full)::

    # Outlook calendar CSV export (US locale: 3/15/2024, 2:30:00 PM). Expands to title: Subject,
    # startTime/endTime: {date: Start Date / End Date, time: Start Time / End Time, US formats},
    # organizerEmail: Meeting Organizer, invitees: {columns: [Required Attendees, Optional
    # Attendees], separator: ";"}, all_day_column: All day event, organizer_in_invitees: drop.
    mapping:
      preset: outlook
      invitee_directory: people.csv   # Outlook exports attendees and organizer by name

    # Google Calendar CSV (05/30/2020, 10:00 AM). Like outlook for title and times,
    # all_day_column: All Day Event; it has no organizer and no attendees.
    mapping:
      preset: google
      organizerEmail: {const: me@example.com}   # required: the export has no organizer

    # Salesforce Event export. title: Subject, startTime: ActivityDateTime (2023-01-18 15:00:00),
    # endTime: {duration_minutes: DurationInMinutes}, externalId: Id, all_day_column: IsAllDayEvent.
    mapping:
      preset: salesforce
      organizerEmail: {column: OwnerId, directory: owners.csv}   # or {const: me@example.com}
      invitees: {column: WhoId, directory: contacts.csv}         # optional; else no invitees

Decisions:
- Times are sent as `YYYY-MM-DDTHH:MM:SS±HH:MM`: Z becomes +00:00, fractions of a second are
  dropped. A time without an offset is read in the row's zone (`timezone_column`, else the config
  `timezone`, else `export_timezone`); never in this computer's: with none, reading the input
  stops on its first such row (Mapper.zone_error), before anything is sent. A local time in a
  DST gap is invalid; one in the repeated hour is its first occurrence (the earlier instant).
  Durations are added in UTC, so they are elapsed time across DST changes. endTime must be
  after startTime.
- Cells are stripped and "" counts as missing. Invitee cells split on `;` and `,` (or `separator`)
  outside double quotes; items are `email`, `Name <email>` or `"Last, First" <email>`; a bare name
  goes through the directory. JSONL invitees may also be lists of such strings or of objects
  {email, displayName, firstName, lastName} (other keys are ignored). Duplicate invitees (case-
  insensitive) are merged silently: the first stays, a later one may add its display name.
- In a template, an empty column renders as ""; for externalId it makes the row invalid instead,
  because an id built from missing parts would collide with others.
- All-day events are invalid by default (Gong records calls, not days); `all_day: allow` sends the
  start date's local midnight to the end date's (at least one day later).
- A row skipped by `filter` or `all_day: skip` comes back with `payload=None` and `errors=()`.
- Dropped invitees are reported in `Mapper.warnings`; `drain_warnings()` hands them over.
- Keys: see `row_key`; invalid and skipped rows key as "r:" + a hash of their raw fields, or
  "line:N" when the reader could not produce fields.

The package, one stage per module: spec.py compiles the config (presets, ConfigError messages);
sources.py reads a column, constant or template; times.py reads times from cells; zones.py places
them in a time zone and writes ISO-8601; people.py reads emails, invitees and directories;
keys.py gives row keys; mapper.py holds the Mapper that runs them over a row.
"""

from .keys import row_key
from .mapper import Mapper
from .spec import API_FIELDS
from .times import MAX_DURATION_MINUTES

__all__ = ["API_FIELDS", "MAX_DURATION_MINUTES", "Mapper", "row_key"]
