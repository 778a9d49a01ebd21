"""Tables that anyone can make grow are pruned on a schedule, each after its configured retention."""

from __future__ import annotations

import importlib
from datetime import timedelta

from sqlalchemy import select

from app.extensions import db
from app.models import AutologinEvent, AutologinToken, LoginThrottle
from app.models.base import utcnow
from app.services import retention
from app.tasks import schedule
from tests import factories


def test_prune_keeps_what_is_within_retention_and_deletes_the_rest(app):
    app.config.update(AUTOLOGIN_EVENT_RETENTION_DAYS=30, AUTOLOGIN_TOKEN_RETENTION_HOURS=2, LOGIN_LOCK_SECONDS=300)
    now = utcnow()
    alice = factories.user("alice")
    box = factories.mail_account()
    db.session.add_all([
        AutologinEvent(at=now - timedelta(days=31), outcome="refused: bad secret", address="198.51.100.1"),
        AutologinEvent(at=now - timedelta(days=29), outcome="issued", user_id=alice.id, account_id=box.id),
        AutologinToken(token_hash="a" * 64, user_id=alice.id, account_id=box.id, created_at=now - timedelta(hours=3),
                       expires_at=now - timedelta(hours=3) + timedelta(seconds=60)),
        AutologinToken(token_hash="b" * 64, user_id=alice.id, account_id=box.id, created_at=now - timedelta(hours=1),
                       expires_at=now - timedelta(hours=1) + timedelta(seconds=60), used_at=now - timedelta(hours=1)),
        LoginThrottle(key="pair:x|old", failures=2, first_failure_at=now - timedelta(seconds=400)),
        LoginThrottle(key="pair:x|lock-over", failures=5, first_failure_at=now - timedelta(seconds=900),
                      locked_until=now - timedelta(seconds=1)),
        LoginThrottle(key="pair:x|live", failures=1, first_failure_at=now - timedelta(seconds=10)),
        LoginThrottle(key="pair:x|locked", failures=5, first_failure_at=now - timedelta(seconds=900),
                      locked_until=now + timedelta(seconds=100)),
    ])
    db.session.commit()
    pruned = retention.scheduled_prune(app)
    assert (pruned.events, pruned.tokens, pruned.throttles) == (1, 1, 2)
    assert db.session.scalars(select(AutologinEvent.outcome)).all() == ["issued"]
    assert db.session.scalars(select(AutologinToken.token_hash)).all() == ["b" * 64]
    assert sorted(db.session.scalars(select(LoginThrottle.key))) == ["pair:x|live", "pair:x|locked"]
    # Pruning again finds nothing.
    assert retention.prune() == retention.Pruned()


def test_the_worker_prunes_every_hour():
    every, target = schedule.PERIODIC["prune-tables"]
    module, _, name = target.rpartition(".")
    assert every == 3600 and getattr(importlib.import_module(module), name) is retention.scheduled_prune
