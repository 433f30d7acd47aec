"""A legacy wedding database as the old application left it, built by hand: plain SQL on the
bundle's baseline, nothing of eventgate's seeder. One organiser with three weddings in three
time zones (published, draft, completed), seven guests each (two without an email, every RSVP
value, an empty and a missing dietary note) and a few website sections."""

from __future__ import annotations

import psycopg

from eventgate.bundle import load_bundle

ORGANISER = "5b0f7c2e-8d1a-4c3e-9f6b-2a7d4e1c9b30"
HAND_WEDDINGS = [  # slug, bride, groom, date, ceremony, reception, zone, venue, theme, status
    ("lucia-y-marc", "Lucía Ferrer", "Marc Puig", "2026-06-13", "17:30", "20:00",
     "Europe/Madrid", "Masia Can Roca", "rustic", "published"),
    ("amara-and-james", "Amara Okafor", "James Whitfield", "2026-10-03", "15:00", None,
     "America/New_York", "Hudson Boathouse", None, "draft"),
    ("yui-to-kenji", "Yui Tanaka", "Kenji Sato", "2025-11-22", "11:00", "13:00",
     "Asia/Tokyo", None, "traditional", "completed"),
]
HAND_GUESTS = [  # wedding slug, name, email (two without), rsvp, party, notes, table, responded
    (w, f"{first} {w.split('-')[0].title()}", email, rsvp, party, notes, table, responded)
    for w in (s[0] for s in HAND_WEDDINGS)
    for first, email, rsvp, party, notes, table, responded in [
        ("Carmen", f"carmen@{w}.example", "accepted", 2, "vegetarian", 1, "2025-03-01 10:00Z"),
        ("Jordi", f"jordi@{w}.example", "accepted", 1, None, 1, "2025-03-02 18:30Z"),
        ("Noor", f"noor@{w}.example", "declined", 1, None, None, "2025-03-05 08:15Z"),
        ("Pat", None if w != "amara-and-james" else f"pat@{w}.example", "pending", 1, None,
         None, None),
        ("Ines", f"ines@{w}.example", "maybe", 3, "no nuts, one child seat", 2, None),
        ("Oscar", f"oscar@{w}.example", "pending", 1, "", None, None),
        ("Mei", f"mei@{w}.example", "accepted", 2, None, 3, "2025-04-11 21:45Z"),
    ]
]


def build_by_hand(conn: psycopg.Connection) -> None:
    """The legacy database as the old application left it, with plain SQL on the bundle's
    baseline; nothing of eventgate's seeder."""
    with conn.transaction():
        for script in load_bundle().baseline:
            conn.execute(script.sql.encode())
        conn.execute("INSERT INTO tenants (id, name, slug) VALUES (%s, 'Bodas Ferrer & Co', "
                     "'bodas-ferrer')", (ORGANISER,))
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO wedding_events (tenant_id, slug, bride_name, groom_name, "
                "wedding_date, ceremony_time, reception_time, timezone, venue_name, theme, "
                "status) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [(ORGANISER, *w) for w in HAND_WEDDINGS])
            cur.executemany(
                "INSERT INTO wedding_invitations (wedding_id, guest_name, email, rsvp_status, "
                "party_size, dietary_notes, table_number, responded_at) SELECT id, %s, %s, "
                "%s, %s::smallint, %s, %s::int, %s::timestamptz FROM wedding_events "
                "WHERE slug = %s",
                [(*g[1:], g[0]) for g in HAND_GUESTS])
        conn.execute(
            "INSERT INTO wedding_sections (wedding_id, section_type, title, content, position, "
            "is_visible) SELECT id, kind, title, NULL, pos, visible FROM wedding_events, "
            "(VALUES ('story', 'Our story', 0, true), ('schedule', 'The day', 1, true), "
            "('gallery', NULL, 2, false)) AS s(kind, title, pos, visible) "
            "WHERE slug <> 'yui-to-kenji' OR kind = 'story'")
