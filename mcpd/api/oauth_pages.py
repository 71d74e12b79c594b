"""The login and consent pages of mcpd's OAuth flow: plain server-rendered HTML.

No script, no framework: forms that POST to mcpd, every field labelled, errors announced
(``role="alert"``), every value escaped. The headers forbid framing (clickjacking a consent),
scripts and caching.
"""

from __future__ import annotations

from html import escape

from fastapi.responses import HTMLResponse

from authz import RoleBinding

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;
color:#1b1b1b;line-height:1.45}
h1{font-size:1.4rem}fieldset{border:1px solid #999;border-radius:6px;margin:1rem 0}
label{display:block;margin:.6rem 0 .2rem;font-weight:600}
input[type=text],input[type=password],select{width:100%;padding:.45rem;font-size:1rem;
box-sizing:border-box}
.check label{display:inline;font-weight:400;font-family:monospace}
button{font-size:1rem;padding:.5rem 1.1rem;margin:.8rem .6rem 0 0}
.alert{border:2px solid #b00020;background:#fdecee;padding:.6rem;border-radius:6px}
.who{background:#f1f4f8;padding:.6rem;border-radius:6px}code{word-break:break-all}
:focus{outline:3px solid #1a5fb4;outline-offset:2px}
"""

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",  # (no-referrer makes Origin `null`)
    "X-Content-Type-Options": "nosniff",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} - mcpd</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _hidden(fields: dict[str, str]) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items()
    )


def _alert(message: str | None) -> str:
    return f'<p class="alert" role="alert">{escape(message)}</p>' if message else ""


def _client_line(client_name: str, resource: str) -> str:
    return (
        f'<p class="who"><strong>{escape(client_name)}</strong> asks for access to the MCP '
        f"server <code>{escape(resource)}</code>.</p>"
    )


def error_page(message: str, status: int = 400) -> HTMLResponse:
    body = (
        "<h1>This sign-in request cannot continue</h1>"
        f"{_alert(message)}"
        "<p>Nothing was sent to the application. Start again from the application.</p>"
    )
    return _page("Error", body, status)


def login_page(
    *,
    client_name: str,
    resource: str,
    fields: dict[str, str],
    csrf: str,
    error: str | None = None,
    username: str = "",
    status: int = 200,
) -> HTMLResponse:
    body = (
        "<h1>Sign in to mcpd</h1>"
        f"{_client_line(client_name, resource)}{_alert(error)}"
        '<form method="post" action="/oauth/login">'
        f"{_hidden({**fields, 'csrf': csrf})}"
        '<label for="username">User name</label>'
        f'<input type="text" id="username" name="username" value="{escape(username)}" '
        'autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" '
        'autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>'
    )
    return _page("Sign in", body, status)


def consent_page(
    *,
    user: str,
    client_name: str,
    client_id: str,
    redirect_uri: str,
    resource: str,
    fields: dict[str, str],
    csrf: str,
    projects: list[str],
    project: str | None,
    bindings: list[RoleBinding],
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    head = (
        "<h1>Allow access?</h1>"
        f"<p>Signed in as <strong>{escape(user)}</strong>.</p>"
        f"{_client_line(client_name, resource)}"
        f"<p>Client id <code>{escape(client_id)}</code>; after your answer the browser "
        f"returns to <code>{escape(redirect_uri)}</code>.</p>{_alert(error)}"
    )
    if not projects:
        body = head + _alert(
            "You may not grant access in any project (the oauth-consent operation); "
            "ask an administrator."
        )
        return _page("Allow access", body, 403 if status == 200 else status)
    options = "".join(
        f'<option value="{escape(p)}"{" selected" if p == project else ""}>{escape(p)}</option>'
        for p in projects
    )
    chooser = (
        '<form method="get" action="/oauth/authorize">'
        f"{_hidden(fields)}"
        '<label for="project">Project</label>'
        f'<select id="project" name="project">{options}</select>'
        '<button type="submit">Show what it may do</button></form>'
    )
    if project is None:
        return _page("Allow access", head + chooser, status)
    if bindings:
        items = "".join(
            f'<div class="check"><input type="checkbox" id="b{i}" name="binding" '
            f'value="{escape(str(b))}" checked> <label for="b{i}">{escape(str(b))}</label></div>'
            for i, b in enumerate(bindings)
        )
        what = (
            f"<fieldset><legend>In project <strong>{escape(project)}</strong> it may "
            f"(at most what you may, now and later):</legend>{items}</fieldset>"
        )
    else:
        what = (
            f"<p>You hold no permissions in project <strong>{escape(project)}</strong>: "
            "the application could connect but do nothing.</p>"
        )
    decide = (
        '<form method="post" action="/oauth/consent">'
        f"{_hidden({**fields, 'csrf': csrf, 'project': project})}{what}"
        '<button type="submit" name="decision" value="allow">Allow</button>'
        '<button type="submit" name="decision" value="deny">Deny</button></form>'
    )
    return _page("Allow access", head + chooser + decide, status)


__all__ = ["HEADERS", "consent_page", "error_page", "login_page"]
