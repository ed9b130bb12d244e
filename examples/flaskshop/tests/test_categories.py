"""Requests through ``flask_client``: views that commit, roll back on a duplicate,
and read. Every test starts from empty tables, whatever the one before committed."""

from __future__ import annotations

from sqlalchemy import select

from flaskshop.models import Category


def test_post_commits_and_the_test_sees_it(flask_client, db_session):
    response = flask_client.post("/categories", json={"name": "Teas"})
    assert response.status_code == 201
    assert db_session.scalars(select(Category.name)).all() == ["Teas"]


def test_the_same_name_again_in_the_next_test(flask_client):
    # The category the test above committed is gone: this one may create it again.
    assert flask_client.get("/categories").json == []
    assert flask_client.post("/categories", json={"name": "Teas"}).status_code == 201


def test_duplicate_is_rolled_back_and_the_session_goes_on(flask_client, db_session):
    assert flask_client.post("/categories", json={"name": "Coffee"}).status_code == 201
    duplicate = flask_client.post("/categories", json={"name": "Coffee"})
    assert duplicate.status_code == 409
    # The view's rollback undid only its own failed insert.
    assert flask_client.post("/categories", json={"name": "Cocoa"}).status_code == 201
    assert [c["name"] for c in flask_client.get("/categories").json] == ["Cocoa", "Coffee"]
    assert db_session.query(Category).count() == 2


def test_views_see_what_the_test_commits(flask_client, db_session):
    db_session.add(Category(name="Spices"))
    db_session.commit()
    assert [c["name"] for c in flask_client.get("/categories").json] == ["Spices"]
