// The console's two static files, served by Latchkey itself (no CDN, no build step): a stylesheet
// and a small script for progressive enhancement (copy buttons, typed confirmations). Every page
// works without the script. Kept as strings so the Worker serves them too (no file system).

export const CONSOLE_CSS = `
:root { --fg: #1b1f24; --muted: #4d5560; --bg: #ffffff; --panel: #f4f6f8; --line: #d0d7de; --accent: #0b5cad;
  --ok: #116329; --warn: #7a4a00; --bad: #a40e26; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg); line-height: 1.45; }
a { color: var(--accent); }
.skip { position: absolute; left: -9999px; }
.skip:focus { left: 8px; top: 8px; background: var(--bg); padding: 4px 8px; z-index: 2; }
header { background: #15202b; color: #fff; }
header nav { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 16px; padding: 8px 16px; max-width: 1400px; margin: 0 auto; }
header a { color: #fff; text-decoration: none; padding: 4px 2px; }
header a[aria-current="page"] { border-bottom: 2px solid #fff; }
header .brand { font-weight: 700; margin-right: 8px; }
header .who { margin-left: auto; font-size: 0.9em; color: #e6e6e6; }
header form { margin: 0; }
header button { background: transparent; color: #fff; border: 1px solid #fff; }
main { padding: 16px; max-width: 1400px; margin: 0 auto; }
h1 { font-size: 1.5rem; margin: 8px 0 16px; }
h2 { font-size: 1.15rem; margin: 24px 0 8px; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: var(--panel); white-space: nowrap; }
td.mono, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.85rem; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 0.8rem; font-weight: 600; border: 1px solid currentColor; }
.s-active, .s-success { color: var(--ok); }
.s-expiring, .s-superseded, .s-used { color: var(--warn); }
.s-expired, .s-revoked, .s-failure { color: var(--bad); }
.counts { display: flex; flex-wrap: wrap; gap: 8px; list-style: none; padding: 0; margin: 0 0 16px; }
.counts a { display: block; padding: 8px 14px; border: 1px solid var(--line); border-radius: 6px; text-decoration: none; color: var(--fg); background: var(--panel); }
.counts strong { display: block; font-size: 1.3rem; }
form.filters, form.stack { display: flex; flex-wrap: wrap; gap: 8px 12px; align-items: flex-end; margin: 0 0 16px; }
form.stack { flex-direction: column; align-items: stretch; max-width: 640px; }
label { display: flex; flex-direction: column; font-size: 0.85rem; color: var(--muted); gap: 2px; }
input, select, textarea, button { font: inherit; padding: 6px 8px; border: 1px solid #6e7781; border-radius: 4px; color: var(--fg); background: var(--bg); }
button { cursor: pointer; background: var(--accent); color: #fff; border-color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
button:disabled { opacity: 0.55; cursor: not-allowed; }
.inline { display: inline-flex; gap: 6px; align-items: center; flex-wrap: wrap; margin: 0; }
.panel { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 12px 16px; margin: 0 0 16px; }
.panel.bad { border-color: var(--bad); }
.notice { border-left: 4px solid var(--accent); }
.secret { display: block; padding: 8px; background: var(--bg); border: 1px dashed var(--line); overflow-wrap: anywhere; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.actions { display: flex; flex-wrap: wrap; gap: 16px; }
.actions > * { flex: 1 1 300px; }
.pager { margin: 12px 0; }
.muted { color: var(--muted); }
@media (max-width: 600px) {
  main { padding: 10px; }
  dl.facts { grid-template-columns: 1fr; }
  dl.facts dd { margin-bottom: 6px; }
  header .who { margin-left: 0; width: 100%; }
}
`;

export const CONSOLE_JS = `'use strict';
// Progressive enhancement only: every form works without this file.
document.addEventListener('click', function (event) {
  var button = event.target instanceof Element ? event.target.closest('button[data-copy]') : null;
  if (!button) return;
  var source = document.getElementById(button.getAttribute('data-copy'));
  if (!source) return;
  var text = source.textContent || '';
  var done = function () { button.textContent = 'Copied'; };
  var fallback = function () {
    var range = document.createRange();
    range.selectNodeContents(source);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = 'Selected: press Ctrl+C';
  };
  if (navigator.clipboard && navigator.clipboard.writeText) navigator.clipboard.writeText(text).then(done, fallback);
  else fallback();
});
document.querySelectorAll('button[data-copy]').forEach(function (b) { b.hidden = false; });
// A typed confirmation (the agent's name) enables its submit button.
document.querySelectorAll('input[data-confirm-name]').forEach(function (input) {
  var submit = input.form && input.form.querySelector('button[type="submit"]');
  if (!submit) return;
  var sync = function () { submit.disabled = input.value !== input.getAttribute('data-confirm-name'); };
  input.addEventListener('input', sync);
  sync();
});
`;
