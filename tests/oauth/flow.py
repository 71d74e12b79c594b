"""An OAuth client of mcpd, step by step over real HTTP (the browser's part with httpx):
register, authorize, sign in, consent, exchange, refresh. Each step can be bent (a wrong
verifier, another redirect URI, a form without its CSRF token) for the security cases."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

REDIRECT = "http://127.0.0.1:33418/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hidden_fields(html: str) -> dict[str, str]:
    return {
        unescape(m.group(1)): unescape(m.group(2))
        for m in re.finditer(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', html)
    }


def checkboxes(html: str) -> list[str]:
    return [unescape(v) for v in re.findall(r'name="binding" value="([^"]*)"', html)]


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Flow:
    base: str  # mcpd
    resource: str
    redirect_uri: str = REDIRECT
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30))
    client_id: str = ""
    verifier: str = ""
    challenge: str = ""
    state: str = field(default_factory=lambda: secrets.token_urlsafe(8))

    def register(self, **extra: Any) -> httpx.Response:
        body = {"client_name": "test client", "redirect_uris": [self.redirect_uri], **extra}
        r = self.http.post(f"{self.base}/oauth/register", json=body)
        if r.status_code == 201:
            self.client_id = r.json()["client_id"]
        return r

    def params(self, **over: str | None) -> dict[str, str]:
        if not self.verifier:
            self.verifier, self.challenge = pkce()
        p: dict[str, str | None] = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "state": self.state,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "resource": self.resource,
            "scope": "mcp",
            **over,
        }
        return {k: v for k, v in p.items() if v is not None}

    def authorize(self, **over: str | None) -> httpx.Response:
        return self.http.get(f"{self.base}/oauth/authorize", params=self.params(**over))

    def login(self, page: httpx.Response, user: str, password: str) -> httpx.Response:
        form = {**hidden_fields(page.text), "username": user, "password": password}
        return self.http.post(f"{self.base}/oauth/login", data=form)

    def consent_page(self, user: str, password: str, project: str, **over: str | None) -> str:
        page = self.authorize(**over)
        assert page.status_code == 200, page.text
        if 'action="/oauth/login"' in page.text:
            r = self.login(page, user, password)
            assert r.status_code == 303, r.text
        page = self.http.get(
            f"{self.base}/oauth/authorize", params={**self.params(**over), "project": project}
        )
        assert page.status_code == 200, page.text
        return page.text

    def consent(
        self, html: str, bindings: list[str] | None = None, **form_over: str | None
    ) -> httpx.Response:
        consent_form = html[html.index('action="/oauth/consent"') :]
        fields: dict[str, Any] = {**hidden_fields(consent_form), "decision": "allow"}
        fields.update(form_over)
        fields = {k: v for k, v in fields.items() if v is not None}
        fields["binding"] = checkboxes(consent_form) if bindings is None else bindings
        return self.http.post(f"{self.base}/oauth/consent", data=fields)

    def code(self, user: str, password: str, project: str) -> str:
        r = self.consent(self.consent_page(user, password, project))
        assert r.status_code == 303, r.text
        q = query_of(r.headers["location"])
        assert q.get("state") == self.state, q
        return q["code"]

    def token(self, **form: str | None) -> httpx.Response:
        data = {k: v for k, v in form.items() if v is not None}
        return self.http.post(f"{self.base}/oauth/token", data=data)

    def close(self) -> None:
        self.http.close()

    def exchange(self, code: str, /, **over: str | None) -> httpx.Response:
        form: dict[str, str | None] = {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
            "resource": self.resource,
            **over,
        }
        return self.token(**form)

    def refresh(self, refresh_token: str, **over: str | None) -> httpx.Response:
        return self.token(
            **{
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": self.client_id,
                **over,
            }
        )
