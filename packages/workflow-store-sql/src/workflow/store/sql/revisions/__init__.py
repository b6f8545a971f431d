"""Bodies of the logical schema changes, shared by every SQL adapter's migrations.

Each adapter's ``migrations/versions/`` holds one thin revision per logical change
(its own revision id, its own history) that calls the body here, so a change is
written once. A body reads the table prefix from the migration context; a dialect
difference is decided inside the body. Released bodies are never edited: fix forward.
"""
