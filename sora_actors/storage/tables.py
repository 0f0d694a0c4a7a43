"""SQLAlchemy Core descriptions of the tables the migrations create, for building queries.

The migrations (``migrations/*.sql``) are the schema's source of truth; a test reflects the
migrated database and checks that these descriptions name the same columns.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("username", sa.Text, nullable=False),
    sa.Column("username_key", sa.Text, nullable=False, unique=True),
    sa.Column("email", sa.Text),
    sa.Column("email_key", sa.Text, unique=True),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("last_login", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("banned", sa.Boolean, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
    sa.Column("ip", sa.Text),
    sa.Column("user_agent", sa.Text),
)

# Unused by the code today, kept on purpose: `system_config` comes from the old backend's
# schema and is kept for the coming admins-and-licences issue; and
# `video_tasks.next_poll_at` and `.restarts` are never written (the poll schedule and the
# restart window live in the actor and the supervisor). Dropping them takes a numbered
# migration, and branches in flight add migrations too: drop them in one migration after
# those have merged, not in a second 0003.
licenses = sa.Table(
    "licenses",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("key_last4", sa.Text, nullable=False),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("user_id", sa.Text),
    sa.Column("device_id", sa.Text),
    sa.Column("features", sa.Text, nullable=False),
    sa.Column("duration_days", sa.Integer),
    sa.Column("is_active", sa.Boolean, nullable=False),
    sa.Column("revoked_at", sa.BigInteger),
    sa.Column("revoked_by", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("activated_at", sa.BigInteger),
    sa.Column("expires_at", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

activity_log = sa.Table(
    "activity_log",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("details", sa.Text),
    sa.Column("ip", sa.Text),
    sa.Column("user_agent", sa.Text),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

system_config = sa.Table(
    "system_config",
    metadata,
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

video_tasks = sa.Table(
    "video_tasks",
    metadata,
    sa.Column("video_id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("external_video_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("phase", sa.Text, nullable=False),
    sa.Column("progress", sa.Integer, nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("model", sa.Text, nullable=False),
    sa.Column("size", sa.Text, nullable=False),
    sa.Column("duration", sa.Integer, nullable=False),
    sa.Column("media_type", sa.Text, nullable=False),
    sa.Column("error_code", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("poll_count", sa.Integer, nullable=False),
    sa.Column("last_poll_at", sa.BigInteger),
    sa.Column("next_poll_at", sa.BigInteger),  # unused: see the note above `licenses`
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("restarts", sa.Integer, nullable=False),  # unused: see above `licenses`
    sa.Column("submit_started_at", sa.BigInteger),
    sa.Column("remixed_from_video_id", sa.Text),
    sa.Column("idempotency_key", sa.Text),
    sa.Column("request_hash", sa.Text),
    sa.Column("upstream_expires_at", sa.BigInteger),
    sa.Column("deadline_at", sa.BigInteger),
    sa.Column("owner", sa.Text),
    sa.Column("lease_expires_at", sa.BigInteger),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.BigInteger),
    sa.Column("completed_at", sa.BigInteger),
    sa.Column("content_stored_at", sa.BigInteger),
    sa.Column("content_expired_at", sa.BigInteger),
    sa.Column("content_variants", sa.Text),
    sa.Column("content_pending_since", sa.BigInteger),
    sa.Column("estimated_end_at", sa.BigInteger),
    sa.Column("channel", sa.Text),
)

task_inputs = sa.Table(
    "task_inputs",
    metadata,
    sa.Column("video_id", sa.Text, primary_key=True),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("filename", sa.Text, nullable=False),
    sa.Column("data_base64", sa.Text, nullable=False),
)

task_content = sa.Table(
    "task_content",
    metadata,
    sa.Column("video_id", sa.Text, primary_key=True),
    sa.Column("variant", sa.Text, primary_key=True),
    sa.Column("storage_key", sa.Text, nullable=False),
    sa.Column("content_type", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("stored_at", sa.BigInteger, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("user_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("key_hash", sa.Text, nullable=False, unique=True),
    sa.Column("prefix", sa.Text, nullable=False),
    sa.Column("last4", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("last_used_at", sa.BigInteger),
    sa.Column("revoked_at", sa.BigInteger),
)
