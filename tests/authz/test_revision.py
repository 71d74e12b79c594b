"""The policy revision (authz/revision.py): one name per state, however it was reached."""

from __future__ import annotations

from authz import Authorizer, Rule, TokenGrant
from authz.wire import apply_change, event_to_json

ALICE = Rule("p", ("User:alice", "*", "servers", "*", "role:view", "allow"), "db:rbac/a#1")
BOB = Rule("g", ("User:bob", "Group:devs"), "db:group/devs#2")
TOKEN = TokenGrant(sha="a" * 64, project="web", creator="User:alice", name="ci")


def test_same_state_same_revision_whatever_the_history() -> None:
    a = Authorizer(stored=[ALICE, BOB], tokens=[TOKEN])
    b = Authorizer()
    first = b.revision
    b.apply(added=[BOB])
    b.register_token(TOKEN)
    b.apply(added=[ALICE])
    assert a.revision == b.revision != first
    b.apply(removed=[ALICE, BOB])
    b.unregister_token(TOKEN.sha)
    assert b.revision == first == Authorizer().revision


def test_what_changes_a_decision_changes_the_revision() -> None:
    a = Authorizer(stored=[ALICE], tokens=[TOKEN])
    before = a.revision
    a.register_token(TokenGrant(TOKEN.sha, TOKEN.project, TOKEN.creator, TOKEN.name, revoked=True))
    revoked = a.revision
    assert revoked != before
    a.register_token(TOKEN)
    assert a.revision == before
    a.reload([ALICE])  # the token is kept: the same state
    assert a.revision == before


def test_a_follower_replaying_changes_names_the_state_as_its_source() -> None:
    source = Authorizer(stored=[ALICE])
    follower = Authorizer(stored=[ALICE])
    source.follow(lambda event: apply_change(follower, event_to_json(event)))
    source.apply(added=[BOB])
    source.register_token(TOKEN)
    source.apply(removed=[ALICE])
    assert follower.revision == source.revision
    assert len(source.revision) == 12 and int(source.revision, 16) >= 0
