"""Reading the globals file a backup saved (`pg_dumpall --globals-only` output) as SQL, not
as lines: a role's name may hold spaces, dots, quotes, semicolons and newlines, a comment
or a password literal may hold anything, and psql meta-commands (`\\restrict`) sit between
the statements. The tokenizer follows PostgreSQL's lexer for what pg_dumpall writes:
'strings' (with '' inside, E'...' with backslash escapes), "identifiers" (with "" inside),
$tag$ dollar quotes $tag$, -- line comments, nested /* block comments */, and backslash
meta-commands at the start of a statement (to the end of their line).

Each statement is then classified by what it is about (which role it creates or alters,
which membership it grants, which tablespace it names), so the recovery engine
(`tasks.globals.apply_globals`) can run exactly the ones a restore needs, as pg_dumpall
wrote them. Pure: no server, tested on its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

WORD = "word"  # an unquoted keyword or identifier (`value` is lowercased, as PostgreSQL folds it)
IDENT = "ident"  # a "quoted identifier" (`value` unescaped)
STRING = "string"  # a '...' or E'...' or $$...$$ literal (`value` unescaped)
OTHER = "other"  # punctuation, operators, numbers

_WORD_START = re.compile(r"[A-Za-z_\u0080-\U0010ffff]")
_WORD_REST = re.compile(r"[A-Za-z0-9_$\u0080-\U0010ffff]*")
_DOLLAR_TAG = re.compile(r"\$([A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\$")


class GlobalsSyntaxError(ValueError):
    """The file ends inside a quote or comment: it is truncated or not pg_dumpall's."""


@dataclass(frozen=True)
class Token:
    kind: str
    value: str
    start: int  # offsets into the statement's text
    end: int


@dataclass(frozen=True)
class Statement:
    """One SQL statement as written (`text`, without its `;`) and its tokens."""

    text: str
    tokens: tuple[Token, ...]

    def words(self, count: int) -> list[str]:
        """The first `count` tokens' values, for classification (keywords lowercased)."""
        return [t.value if t.kind == WORD else "" for t in self.tokens[:count]]

    def head(self) -> str:
        """How to name the statement in a message without repeating what it holds (a
        password, a name): its leading keywords ("ALTER ROLE", "COMMENT ON ROLE")."""
        words = []
        for token in self.tokens:
            if token.kind != WORD:
                break
            words.append(token.value.upper())
        count = 3 if words[:1] in (["COMMENT"], ["SECURITY"]) else 2
        return " ".join(words[:count]) or "statement"


def statements(text: str) -> list[Statement]:
    """The SQL statements of `text`, split at the semicolons outside quotes and comments;
    meta-commands and empty statements are dropped."""
    found: list[Statement] = []
    tokens: list[Token] = []
    begin = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif text.startswith("/*", i):
            i = _block_comment(text, i)
        elif c == "\\" and not tokens:
            end = text.find("\n", i)  # a psql meta-command runs to the end of its line
            i = n if end < 0 else end + 1
            begin = i
        elif c == ";":
            if tokens:
                found.append(_statement(text, begin, i, tokens))
            tokens = []
            i += 1
            begin = i
        else:
            if not tokens:
                begin = i
            token, i = _token(text, i)
            tokens.append(token)
    if tokens:
        found.append(_statement(text, begin, n, tokens))
    return found


def _statement(text: str, begin: int, end: int, tokens: list[Token]) -> Statement:
    shifted = tuple(Token(t.kind, t.value, t.start - begin, t.end - begin) for t in tokens)
    return Statement(text[begin:end].strip(), shifted)


def _block_comment(text: str, i: int) -> int:
    depth, i = 1, i + 2
    while depth:
        if i >= len(text):
            raise GlobalsSyntaxError("the file ends inside a /* comment")
        if text.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif text.startswith("*/", i):
            depth, i = depth - 1, i + 2
        else:
            i += 1
    return i


def _token(text: str, i: int) -> tuple[Token, int]:
    c = text[i]
    if c in "eE" and text.startswith("'", i + 1):
        value, end = _quoted(text, i + 1, "'", escapes=True)
        return Token(STRING, value, i, end), end
    if c == "'":
        value, end = _quoted(text, i, "'", escapes=False)
        return Token(STRING, value, i, end), end
    if c == '"':
        value, end = _quoted(text, i, '"', escapes=False)
        return Token(IDENT, value, i, end), end
    if c == "$":
        tag = _DOLLAR_TAG.match(text, i)
        if tag:
            close = text.find(tag.group(0), tag.end())
            if close < 0:
                raise GlobalsSyntaxError(f"the file ends inside a {tag.group(0)} quote")
            end = close + len(tag.group(0))
            return Token(STRING, text[tag.end() : close], i, end), end
    if _WORD_START.match(c):
        end = _WORD_REST.match(text, i + 1).end()  # type: ignore[union-attr]
        return Token(WORD, text[i:end].lower(), i, end), end
    return Token(OTHER, c, i, i + 1), i + 1


def _quoted(text: str, i: int, quote: str, *, escapes: bool) -> tuple[str, int]:
    """The value of a quoted token opening at `i`, and the offset after it; a doubled
    quote is one quote, and in E'' strings a backslash escapes the next character."""
    out: list[str] = []
    j = i + 1
    while True:
        if j >= len(text):
            raise GlobalsSyntaxError(f"the file ends inside a {quote}quoted{quote} token")
        c = text[j]
        if escapes and c == "\\" and j + 1 < len(text):
            out.append(text[j + 1])
            j += 2
        elif c == quote and text.startswith(quote, j + 1):
            out.append(quote)
            j += 2
        elif c == quote:
            return "".join(out), j + 1
        else:
            out.append(c)
            j += 1


# --- what each statement is about -----------------------------------------------------------

CREATE_ROLE = "create role"
ROLE = "role"  # ALTER ROLE, COMMENT ON ROLE, SECURITY LABEL ... ON ROLE: one role's own
MEMBERSHIP = "membership"  # GRANT role TO role
GRANT = "grant"  # GRANT privilege ON PARAMETER ... TO role
TABLESPACE = "tablespace"
SESSION = "session"  # SET ...: pg_dumpall's settings for the psql session that reads it
OTHER_STATEMENT = "other"


@dataclass(frozen=True)
class Classified:
    """A statement and what it is about: `roles` the roles it creates or alters, or for a
    membership the granted roles, with `members` the roles receiving them."""

    statement: Statement
    kind: str
    roles: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    tablespace: str | None = None

    @property
    def sql(self) -> str:
        """The statement to run. A membership's GRANTED BY is left out: the grantor is
        the restoring user, since the original grantor need not exist on the target."""
        if self.kind != MEMBERSHIP:
            return self.statement.text
        tokens = self.statement.tokens
        for index, token in enumerate(tokens[:-1]):
            after = tokens[index + 1]
            if (token.kind, token.value, after.kind, after.value) == (WORD, "granted", WORD, "by"):
                return self.statement.text[: token.start].rstrip()
        return self.statement.text


def classify(statement: Statement) -> Classified:
    tokens = statement.tokens
    first = statement.words(4)
    if first[:1] == ["set"]:
        return Classified(statement, SESSION)
    if _about_tablespace(statement):
        return Classified(statement, TABLESPACE, tablespace=_tablespace(tokens))
    if first[:2] == ["create", "role"] and len(tokens) > 2:
        return Classified(statement, CREATE_ROLE, (_name(tokens[2]),))
    if first[:2] == ["alter", "role"] and len(tokens) > 2:
        return Classified(statement, ROLE, (_name(tokens[2]),))
    if first[:3] == ["comment", "on", "role"] and len(tokens) > 3:
        return Classified(statement, ROLE, (_name(tokens[3]),))
    if first[:2] == ["security", "label"]:
        role = _after(tokens, ["on", "role"])
        if role is not None:
            return Classified(statement, ROLE, (role,))
    if first[:1] == ["grant"]:
        to = _index(tokens, "to")
        if to is not None:
            members = _names(tokens[to + 1 :])
            if _index(tokens[:to], "on") is None:
                return Classified(statement, MEMBERSHIP, tuple(_names(tokens[1:to])), members)
            return Classified(statement, GRANT, members)
    return Classified(statement, OTHER_STATEMENT)


def _name(token: Token) -> str:
    return token.value


def _index(tokens: Sequence[Token], word: str) -> int | None:
    return next((i for i, t in enumerate(tokens) if t.kind == WORD and t.value == word), None)


def _after(tokens: Sequence[Token], words: list[str]) -> str | None:
    for i in range(len(tokens) - len(words)):
        window = tokens[i : i + len(words)]
        if all(t.kind == WORD for t in window) and [t.value for t in window] == words:
            return _name(tokens[i + len(words)])
    return None


def _names(tokens: Iterable[Token]) -> tuple[str, ...]:
    """A comma-separated list of role names, up to the first keyword after one (WITH,
    GRANTED)."""
    names: list[str] = []
    expect_name = True
    for token in tokens:
        if expect_name and token.kind in (WORD, IDENT):
            names.append(_name(token))
            expect_name = False
        elif not expect_name and token.value == ",":
            expect_name = True
        else:
            break
    return tuple(names)


def _about_tablespace(statement: Statement) -> bool:
    """CREATE/ALTER TABLESPACE, COMMENT ON, SECURITY LABEL ... ON, GRANT/REVOKE ... ON
    TABLESPACE (a role may itself be called tablespace, so position matters)."""
    first = statement.words(3)
    if first[:2] in (["create", "tablespace"], ["alter", "tablespace"]):
        return True
    if first[:1] in (["comment"], ["security"], ["grant"], ["revoke"]):
        return _after(statement.tokens, ["on", "tablespace"]) is not None
    return False


def _tablespace(tokens: Sequence[Token]) -> str | None:
    named = _after(tokens, ["on", "tablespace"])
    if named is not None:
        return named
    return _name(tokens[2]) if len(tokens) > 2 else None


# --- the whole file -------------------------------------------------------------------------


@dataclass
class Globals:
    """The globals file, read: each role's statements in the file's order (its CREATE
    ROLE first), the memberships, privileges on parameters, and the tablespaces."""

    roles: dict[str, list[Classified]] = field(default_factory=dict)
    memberships: list[Classified] = field(default_factory=list)
    grants: list[Classified] = field(default_factory=list)
    tablespaces: list[str] = field(default_factory=list)
    other: list[Classified] = field(default_factory=list)

    def related(self, roles: Iterable[str]) -> set[str]:
        """`roles` and every role of the file joined to them by memberships, both ways,
        transitively: a role a policy names comes with the logins that are its members
        and the groups it belongs to."""
        found = {r for r in roles if r in self.roles}
        edges = [(g, m) for c in self.memberships for g in c.roles for m in c.members]
        grown = True
        while grown:
            grown = False
            for granted, member in edges:
                for a, b in ((granted, member), (member, granted)):
                    if a in found and b not in found and b in self.roles:
                        found.add(b)
                        grown = True
        return found


def read_globals(text: str) -> Globals:
    """The statements of a `pg_dumpall --globals-only` file, grouped by what they are
    about; GlobalsSyntaxError when it ends inside a quote or comment."""
    read = Globals()
    for statement in statements(text):
        each = classify(statement)
        if each.kind == CREATE_ROLE:
            read.roles.setdefault(each.roles[0], []).insert(0, each)
        elif each.kind == ROLE:
            read.roles.setdefault(each.roles[0], []).append(each)
        elif each.kind == MEMBERSHIP:
            read.memberships.append(each)
        elif each.kind == GRANT:
            read.grants.append(each)
        elif each.kind == TABLESPACE:
            if each.tablespace and each.tablespace not in read.tablespaces:
                read.tablespaces.append(each.tablespace)
        elif each.kind != SESSION:
            read.other.append(each)
    read.roles = {r: s for r, s in read.roles.items() if s and s[0].kind == CREATE_ROLE}
    return read
