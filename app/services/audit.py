"""The audit trail administrators read: who changed what."""

from __future__ import annotations

import logging

from flask_login import current_user

from app.extensions import db
from app.models import AuditEntry

logger = logging.getLogger(__name__)


def record(action: str, target: str, details: str = "") -> None:
    """Add an audit entry for the current user; the caller's commit saves it."""
    user_id = current_user.id if current_user and current_user.is_authenticated else None
    db.session.add(AuditEntry(user_id=user_id, action=action, target=target[:200], details=details))
    # Action and target only: details may describe changed settings, which is not for log files.
    logger.info("audit %s %s", action, target[:200],
                extra={"audit_action": action, "audit_target": target[:200], "user_id": user_id})
