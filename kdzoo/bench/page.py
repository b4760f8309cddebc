"""The self-contained HTML report of a bench, styled for reading.

A small header with the run's command, date, host, git commit and every distribution version; then per
task and pair its table (text left, numbers right, the verdict as a badge whose full detail sits in a
tooltip and in a ``<details>`` block), its costs and its plots (inlined as data URIs). Wide tables
scroll inside their own container, so the page itself never overflows a narrow window.
"""

from __future__ import annotations

import base64
import html
import re
from typing import Any

from .provenance import host_line
from .tables import REFERENCE_NOTE, Column, Section, sections, verdict_note

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;margin:0 auto;max-width:1100px;
  padding:12px 16px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;margin:28px 0 2px}h3{font-size:15px;margin:16px 0 4px}
p.pair{margin:0 0 6px;color:#555;overflow-wrap:anywhere}
header.run{font-size:13px;color:#444;border-bottom:1px solid #ddd;padding-bottom:8px}
header.run dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:2px 12px;margin:0}
header.run dt{font-weight:600}header.run dd{margin:0;overflow-wrap:anywhere}
code{font-size:12.5px;background:#f4f4f4;padding:0 3px;border-radius:3px;overflow-wrap:anywhere}
pre{background:#f4f4f4;padding:8px;overflow-x:auto;font-size:12.5px}
.note{font-size:13px;color:#444}
.scroll{overflow-x:auto;max-width:100%;margin:6px 0}
table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #e5e5e5;padding:4px 8px;vertical-align:top}
th{background:#f4f4f4;font-weight:600}
.text{text-align:left}.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.verdict{white-space:nowrap}
td.strategy{min-width:15em;max-width:26em;overflow-wrap:break-word}td.tuned{white-space:nowrap}
tr.teacher td{color:#555;font-style:italic}tr.reference td{color:#555}
.badge{display:inline-block;padding:0 8px;border-radius:10px;font-size:12px;line-height:18px;white-space:nowrap}
.badge.beats{background:#cdeed6;color:#14532d;font-weight:600}
.badge.does-not-beat{background:#ececec;color:#444}
.badge.too-few-seeds{background:#fff1cc;color:#6b4a00}
.badge.identical{background:#e8e8f8;color:#333}
.badge.baseline{background:#dde7fa;color:#1e3a8a}
.badge.reference{background:#efe6fa;color:#5b21b6}
details{font-size:13px;margin:4px 0 8px}summary{cursor:pointer;color:#444}
.plots img{max-width:100%;height:auto;margin:6px 6px 0 0;border:1px solid #e5e5e5}
"""


def _notes_html(text: str) -> str:
    """A bench's notes (a little Markdown: paragraphs, code fences, `code`, **bold**, links) as HTML."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        if block.startswith("```"):
            body = "\n".join(line for line in block.splitlines() if not line.startswith("```"))
            out.append(f"<pre>{html.escape(body)}</pre>")
            continue
        inline = html.escape(block)
        inline = re.sub(r"`([^`]+)`", r"<code>\1</code>", inline)
        inline = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", inline)
        inline = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', inline)
        out.append(f"<p>{inline}</p>")
    return "".join(out)


def header(results: dict[str, Any]) -> str:
    """The run's facts as a small definition list (never a raw JSON line)."""
    prov = results.get("provenance") or {}
    versions = prov.get("versions") or results.get("versions") or {}
    facts = [("Command", f"<code>{html.escape(prov['command'])}</code>" if prov.get("command") else None),
             ("Date", html.escape(str(prov["date"])) if prov.get("date") else None),
             ("Host", html.escape(host_line(prov.get("host"))) if prov.get("host") else None),
             ("Git commit", f"<code>{html.escape(str(prov['git_commit']))}</code>" if prov.get("git_commit") else None),
             ("Versions", " · ".join(f"{html.escape(k)}&nbsp;{html.escape(str(v))}" for k, v in versions.items())
              if versions else None)]
    items = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts if v)
    return f'<header class="run"><dl>{items or "<dt>Run</dt><dd>not recorded</dd>"}</dl></header>'


def _cell(row: dict[str, str], c: Column) -> str:
    text = html.escape(str(row.get(c.key, "")))
    if c.kind == "verdict":
        if not text:
            return '<td class="verdict text"></td>'
        title = f' title="{html.escape(row["verdict_detail"])}"' if row.get("verdict_detail") else ""
        return f'<td class="verdict text"><span class="badge {row.get("verdict_class", "")}"{title}>{text}</span></td>'
    if c.key == "strategy":  # a long variant name breaks after its separators, never inside a word
        text = re.sub(r"([,+])", r"\1<wbr>", text)
    extra = f" {c.key}" if c.key in ("strategy", "tuned") else ""
    return f'<td class="{c.kind}{extra}">{text}</td>'


def table(columns: list[Column], rows: list[dict[str, str]], css_class: str, task: str) -> str:
    head = "".join(f'<th class="{"num" if c.kind == "num" else "text"}">{html.escape(c.title)}</th>' for c in columns)
    body = "".join(f'<tr class="{html.escape(r.get("kind", ""))}">' + "".join(_cell(r, c) for c in columns) + "</tr>"
                   for r in rows)
    return (f'<div class="scroll"><table class="{css_class}" data-task="{html.escape(task)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _section(s: Section, images: dict[str, tuple[str, bytes]]) -> str:
    parts = [f'<section id="task-{s.index}"><h2>{html.escape(s.task)}</h2>'
             f'<p class="pair">{html.escape(s.pair)}</p>', table(s.main_columns, s.main, "task-table", s.task)]
    if s.details:
        family = f", Holm-adjusted over {s.family} rows" if s.family else ""
        parts.append(f"<details><summary>vs ce in full: mean difference with 95% CI, p{family}, seeds won</summary>"
                     + table(s.detail_columns, s.details, "detail-table", s.task) + "</details>")
    if s.not_run:
        parts.append('<ul class="note">' + "".join(f"<li>{html.escape(n)}: {html.escape(t)}</li>" for n, t in s.not_run)
                     + "</ul>")
    if s.costs and len(s.cost_columns) > 1:
        parts.append("<h3>Costs</h3>" + table(s.cost_columns, s.costs, "cost-table", s.task))
    imgs = "".join(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                   for name, (_, data) in images.items() if _index(name) == s.index)
    if imgs:
        parts.append(f'<div class="plots">{imgs}</div>')
    return "".join(parts) + "</section>"


def _index(name: str) -> int | None:
    tail = name.rsplit(".", 1)[0].rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def html_report(results: dict[str, Any], images: dict[str, tuple[str, bytes]]) -> str:
    """One self-contained page: header, notes, then per task and pair its tables and plots."""
    title = results.get("title") or f"kdzoo bench {results.get('suite')}"
    notes = f'<div class="notes">{_notes_html(results["notes"])}</div>' if results.get("notes") else ""
    summary = results["summary"]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(_plain(title))}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(_plain(title))}</h1>{header(results)}{notes}"
            f'<p class="note">Mean ± std over seeds. {html.escape(verdict_note(summary))} '
            f"{html.escape(REFERENCE_NOTE)}</p>"
            + "".join(_section(s, images) for s in sections(summary)) + "</body></html>")


def _plain(markdown_title: str) -> str:
    return markdown_title.replace("`", "")


__all__ = ["header", "html_report", "table"]
