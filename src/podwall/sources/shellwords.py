"""A small POSIX-shell tokenizer that remembers the physical line of every word.

`shlex` cannot do this job: it reports the line *after* a token, keeps backslash-newline inside words, and
treats a newline like any other space, so commands cannot be told apart. What a shell does, and this does:
- quotes: '…' literal, "…" with backslash escapes; `echo "podman run --network host"` is one word;
- `#` starts a comment only at the start of a word;
- backslash-newline joins lines (also inside words and double quotes), so a word keeps the line it
  started on;
- `;`, `&`, `|`, `&&`, `||`, `(`, `)`, newlines separate commands; redirections are operators too;
- `$(…)` and backticks hold commands that the shell runs: they come back as extra streams;
- here-document bodies are data, never commands.

With `shell=False` (Quadlet `PodmanArgs=`) only quotes, escapes and continuations apply.
"""

from __future__ import annotations

from dataclasses import dataclass

_OPERATORS = (
    "<<<", "<<-", "&>>", ";;", "&&", "||", "|&", "<<", ">>", ">&", "<&", ">|", "&>", "<>",
    ";", "&", "|", "(", ")", "<", ">",
)  # fmt: skip
SEPARATORS = frozenset({";", ";;", "&", "&&", "||", "|", "|&", "(", ")", "\n"})
REDIRECTIONS = frozenset(op for op in _OPERATORS if op[0] in "<>" or op.startswith("&>"))
_OP_START = frozenset(";&|()<>")


@dataclass(frozen=True)
class Word:
    text: str
    line: int
    op: bool = False  # a separator or redirection operator, not a word


class ShellSyntaxError(ValueError):
    def __init__(self, message: str, line: int):
        self.line = line
        super().__init__(message)


class _Lexer:
    def __init__(self, text: str, line: int, shell: bool):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.line = line
        self.shell = shell
        self.streams: list[list[Word]] = []  # command substitutions, each its own command stream
        self.heredocs: list[tuple[str, bool]] = []

    def peek(self, k: int = 1) -> str:
        j = self.i + k
        return self.s[j] if j < self.n else ""

    # -- streams ------------------------------------------------------------------------------------
    def stream(self, close: bool = False, open_line: int = 0) -> list[Word]:
        out: list[Word] = []
        depth = 0  # subshell parentheses inside a $( … )
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\\" and self.peek() == "\n":
                self.i += 2
                self.line += 1
            elif c == "\n":
                if self.shell:
                    out.append(Word("\n", self.line, True))
                self.i += 1
                self.line += 1
                if self.heredocs:
                    self.skip_heredocs()
            elif c in " \t\r\f\v":
                self.i += 1
            elif self.shell and c == "#":
                while self.i < self.n and self.s[self.i] != "\n":
                    self.i += 1
            elif self.shell and c in _OP_START:
                if c == ")" and close and depth == 0:
                    self.i += 1
                    return out
                op = next(o for o in _OPERATORS if self.s.startswith(o, self.i))
                if op == "(":
                    depth += 1
                elif op == ")":
                    depth = max(0, depth - 1)
                out.append(Word(op, self.line, True))
                self.i += len(op)
                if op in ("<<", "<<-"):
                    self.heredoc_delimiter(op == "<<-")
            else:
                line = self.line
                text = self.word(close)
                if self.shell and text.isdigit() and self.peek(0) in ("<", ">"):
                    continue  # a file descriptor number (`2>/dev/null`) belongs to the redirection
                out.append(Word(text, line))
        if close:
            raise ShellSyntaxError("unterminated $( … )", open_line)
        return out

    def heredoc_delimiter(self, strip_tabs: bool) -> None:
        while self.i < self.n and self.s[self.i] in " \t":
            self.i += 1
        line = self.line
        delim = self.word(False)
        if not delim:
            raise ShellSyntaxError("here-document without a delimiter", line)
        self.heredocs.append((delim, strip_tabs))

    def skip_heredocs(self) -> None:
        pending, self.heredocs = self.heredocs, []
        for delim, strip_tabs in pending:
            while self.i < self.n:
                end = self.s.find("\n", self.i)
                end = self.n if end < 0 else end
                body_line = self.s[self.i : end]
                self.i = min(end + 1, self.n)
                self.line += 1 if end < self.n else 0
                if (body_line.lstrip("\t") if strip_tabs else body_line) == delim:
                    break

    # -- words --------------------------------------------------------------------------------------
    def word(self, close: bool) -> str:
        buf: list[str] = []
        while self.i < self.n:
            c = self.s[self.i]
            if c in " \t\r\f\v\n":
                break
            if self.shell and c in _OP_START:
                break
            if c == "\\":
                nxt = self.peek()
                if nxt == "\n":
                    self.i += 2
                    self.line += 1
                    continue
                buf.append(nxt)
                self.i += 2
            elif c == "'":
                end = self.s.find("'", self.i + 1)
                if end < 0:
                    raise ShellSyntaxError("unterminated single quote", self.line)
                part = self.s[self.i + 1 : end]
                buf.append(part)
                self.line += part.count("\n")
                self.i = end + 1
            elif c == '"':
                self.double_quoted(buf)
            elif self.shell and c == "$" and self.peek() == "(":
                buf.append(self.dollar_paren())
            elif self.shell and c == "`":
                buf.append(self.backtick())
            elif self.shell and c == "$" and self.peek() == "{":
                buf.append(self.braced())
            elif self.shell and c == "$" and self.peek() == "'":
                self.i += 1  # $'…' ANSI-C quoting: close enough to '…' for option words
            else:
                buf.append(c)
                self.i += 1
        return "".join(buf)

    def double_quoted(self, buf: list[str]) -> None:
        start = self.line
        self.i += 1
        while True:
            if self.i >= self.n:
                raise ShellSyntaxError("unterminated double quote", start)
            c = self.s[self.i]
            if c == '"':
                self.i += 1
                return
            if c == "\\" and self.peek() in ('"', "\\", "$", "`", "\n"):
                if self.peek() == "\n":
                    self.line += 1
                else:
                    buf.append(self.peek())
                self.i += 2
            elif self.shell and c == "$" and self.peek() == "(":
                buf.append(self.dollar_paren())
            elif self.shell and c == "`":
                buf.append(self.backtick())
            else:
                if c == "\n":
                    self.line += 1
                buf.append(c)
                self.i += 1

    def dollar_paren(self) -> str:
        start = self.line
        if self.s.startswith("$((", self.i):  # arithmetic: no commands inside
            depth, j = 0, self.i + 1
            while j < self.n:
                if self.s[j] == "(":
                    depth += 1
                elif self.s[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= self.n:
                raise ShellSyntaxError("unterminated $(( … ))", start)
            text = self.s[self.i : j + 1]
            self.line += text.count("\n")
            self.i = j + 1
            return text
        self.i += 2
        self.streams.append(self.stream(close=True, open_line=start))
        return "$(…)"

    def backtick(self) -> str:
        start = self.line
        j = self.i + 1
        while j < self.n and self.s[j] != "`":
            j += 2 if self.s[j] == "\\" else 1
        if j >= self.n:
            raise ShellSyntaxError("unterminated backquote", start)
        inner = self.s[self.i + 1 : j].replace("\\`", "`")
        sub = _Lexer(inner, start, self.shell)
        self.streams.append(sub.stream())
        self.streams.extend(sub.streams)
        self.line += self.s[self.i : j].count("\n")
        self.i = j + 1
        return "`…`"

    def braced(self) -> str:
        start, j, depth = self.line, self.i + 1, 0
        while j < self.n:
            if self.s[j] == "{":
                depth += 1
            elif self.s[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if j >= self.n:
            raise ShellSyntaxError("unterminated ${ … }", start)
        text = self.s[self.i : j + 1]
        self.line += text.count("\n")
        self.i = j + 1
        return text


def tokenize(text: str, *, first_line: int = 1, shell: bool = True) -> list[list[Word]]:
    """Command streams: the script itself first, then one per command substitution."""
    lx = _Lexer(text, first_line, shell)
    main = lx.stream()
    return [main, *lx.streams]


def split_commands(stream: list[Word]) -> list[list[Word]]:
    """Simple commands: words between separators, with redirections and their targets removed."""
    commands: list[list[Word]] = []
    cur: list[Word] = []
    skip_next = False
    for w in stream:
        if w.op:
            if w.text in SEPARATORS:
                if cur:
                    commands.append(cur)
                cur = []
            elif w.text in REDIRECTIONS and w.text not in ("<<", "<<-"):
                skip_next = True  # the redirection target is a file name, not an argument
            continue
        if skip_next:
            skip_next = False
            continue
        cur.append(w)
    if cur:
        commands.append(cur)
    return commands
