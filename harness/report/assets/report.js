// The harness report's page: the overview and statistics from the inline JSON, the record browser
// from the gzipped records (see harness/report/browser.py for their layout). Every string
// from the ledger reaches the page as text (textContent, createTextNode), never as HTML.
"use strict";
(() => {
  const PAGE_SIZE = 50;
  const SNIPPET = 120;
  const meta = JSON.parse(document.getElementById("meta").textContent);
  const $ = (id) => document.getElementById(id);

  // An element with attributes and children (strings become text nodes).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const count = (n) => (n === null || n === undefined ? "?" : Number(n).toLocaleString("en-US"));
  const fixed = (x, digits) => (x === null || x === undefined ? "-" : Number(x).toFixed(digits));
  const percent = (x) => (x === null || x === undefined ? "-" : (100 * x).toFixed(1) + "%");
  const pValue = (p) => (p === null || p === undefined ? "-" : p < 1e-3 ? p.toExponential(2) : p.toFixed(3));

  function table(headers, rows, numeric) {
    const head = el("tr", {}, headers.map((h, i) => el("th", { class: numeric[i] ? "num" : null }, h)));
    const body = rows.map((cells) =>
      el("tr", {}, cells.map((c, i) => el("td", { class: numeric[i] ? "num" : null }, c))));
    return el("table", {}, el("thead", {}, head), el("tbody", {}, body));
  }

  // ---- views ----
  function show(view) {
    for (const section of document.querySelectorAll("main > .view")) section.hidden = section.id !== view;
    for (const button of document.querySelectorAll("nav button")) {
      button.classList.toggle("active", button.dataset.view === (view === "detail" ? "records" : view));
    }
    window.scrollTo(0, 0);
  }
  for (const button of document.querySelectorAll("nav button")) {
    button.addEventListener("click", () => show(button.dataset.view));
  }

  // ---- overview ----
  function overview() {
    $("source").textContent =
      `${meta.ledger}: ${count(meta.records)} jobs (latest record of each)` +
      (meta.scores ? `, scores from ${meta.scores}` : ", no scores");
    const notes = [...meta.notes];
    if (meta.next_command) {
      const first = meta.needs_scorers
        ? `add a [[scorers]] table to ${meta.needs_scorers} (docs/scoring.md), then ` : "";
      notes.unshift(el("span", {}, `No scores yet: ${first}label the answers with `,
        el("code", {}, meta.next_command), ", then make this report again."));
    }
    if (notes.length) {
      $("notes").append(el("div", { class: "notes" }, el("strong", {}, "Notes"),
        el("ul", {}, notes.map((n) => el("li", {}, n)))));
    }
    if (meta.stats.hallucination.length) $("headline").replaceChildren(...hallucinationView(meta.stats, "h2"));
    const variants = meta.variants;
    $("variants").replaceWith(table(
      ["variant", "ok", "failed", "pending", "retried", "in tok", "out tok", "p50 s", "p95 s", "wall s", "cost"],
      variants.map((v) => [v.variant, count(v.ok), count(v.failed), count(v.pending), count(v.retried),
        count(v.input_tokens), count(v.output_tokens), fixed(v.p50, 3), fixed(v.p95, 3),
        fixed(v.wall_seconds, 1), v.cost_usd === null ? "unknown" : "$" + v.cost_usd.toFixed(4)]),
      [false, true, true, true, true, true, true, true, true, true, true]));
    const known = variants.filter((v) => v.cost_usd !== null);
    const total = known.reduce((sum, v) => sum + v.cost_usd, 0);
    $("totals").textContent = `total cost: $${total.toFixed(4)}` +
      (known.length < variants.length ? ` (unknown for ${variants.length - known.length} variant(s): no price)` : "");
    const runs = $("runs");
    if (!meta.runs.length) runs.append(el("p", { class: "muted" }, "No run lines in the ledger."));
    for (const run of meta.runs) runs.append(runView(run));
  }

  function runView(run) {
    const revision = run.git_revision
      ? run.git_revision.slice(0, 12) + (run.git_dirty ? " (uncommitted changes)" : "") : "unknown";
    const facts = [
      ["started", run.started], ["last result", run.ended],
      ["wall time", run.wall_seconds === null ? null : fixed(run.wall_seconds, 1) + " s"],
      ["command", run.command], ["config", run.config_path], ["git revision", revision],
      ["harness", run.harness_version], ["python", run.python], ["host", run.host], ["GPU", run.gpu],
      ["shard", run.shard], ["prompts", run.prompts.path],
      ["prompt count", run.prompts.count === undefined ? null : count(run.prompts.count)],
      ["prompt file SHA-256 (sha256sum)", run.prompts.file_sha256],
      ["prompts sent SHA-256 (ids and content hashes, after filters)", run.prompts.content_sha256],
      ["hub commit", run.prompts.hub_commit],
    ].filter(([, value]) => value !== null && value !== undefined && value !== "");
    const models = table(["model", "provider", "model id", "mode", "server (base_url)", "revision"],
      run.models.map((m) => [m.name, m.provider, m.model, m.mode || "live", m.base_url || "-", m.revision || "-"]),
      []);
    return el("details", { class: "run", open: meta.runs.length <= 3 },
      el("summary", {}, `run ${run.run_id} · ${run.started || ""}`),
      el("dl", { class: "facts" }, facts.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      models);
  }

  // ---- statistics ----
  const interval = (r) => (r ? `${percent(r.rate)} [${percent(r.low)}, ${percent(r.high)}] ${count(r.count)}/${count(r.n)}` : "");
  const signed = (h) => (h >= 0 ? "+" : "") + h.toFixed(3);
  const PROBE_ITEMS = { hallucination: "synthetic probes", "false denial": "real items" };
  const NEGATIVE = /^(no|not|non)[_-]/i;  // a label that says something is not (no_refusal)
  const scroll = (node) => el("div", { class: "scroll" }, node);

  // Per scorer with claims or denies: each variant's hallucination and false-denial rates, and
  // the paired comparisons of every two variants on the items both answered.
  function hallucinationView(stats, headingTag) {
    const parts = [];
    for (const scorer of [...new Set(stats.hallucination.map((r) => r.scorer))]) {
      const rates = stats.hallucination.filter((r) => r.scorer === scorer);
      const measures = Object.keys(PROBE_ITEMS).filter((m) => rates.some((r) => r.measure === m));
      const label = (m) => rates.find((r) => r.measure === m).label;
      const variants = [...new Set(rates.map((r) => r.variant))].sort();
      parts.push(el(headingTag, {}, `${scorer}: hallucination view, 95% Wilson interval`));
      parts.push(scroll(table(
        ["variant", ...measures.map((m) => `${m}: ${label(m)} on ${PROBE_ITEMS[m]}`)],
        variants.map((v) => [v, ...measures.map((m) => interval(rates.find((r) => r.variant === v && r.measure === m)))]),
        [false, ...measures.map(() => true)])));
      const compared = stats.hallucination_comparisons.filter((c) => c.scorer === scorer);
      if (compared.length) {
        parts.push(el("p", { class: "muted" }, "Paired on the items both variants answered: exact McNemar, " +
          `Benjamini-Hochberg ${stats.family}.`));
        parts.push(scroll(comparisonTable(compared, { measure: (c) => c.measure })));
      }
    }
    return parts;
  }

  function comparisonTable(comparisons, lead) {
    return table(
      [...Object.keys(lead), "variant a", "variant b", "pairs", "rate a", "rate b", "a only", "b only", "p", "p (BH)", "Cohen's h"],
      comparisons.map((c) => [...Object.values(lead).map((f) => f(c)), c.variant_a, c.variant_b, count(c.pairs),
        percent(c.rate_a), percent(c.rate_b), count(c.a_only), count(c.b_only), pValue(c.p_value),
        pValue(c.p_adjusted), signed(c.cohens_h)]),
      [...Object.keys(lead).map(() => false), false, false, true, true, true, true, true, true, true, true]);
  }

  // The labels shown of a scorer: a scorer of two labels its first (the other is the rest), the
  // ledger's status its errors only, and only when there are some.
  function shownLabels(scorer, rates) {
    const labels = [...new Set(rates.map((r) => r.label))].sort();
    if (scorer === "(status)") return rates.some((r) => r.label === "error" && r.count) ? ["error"] : [];
    // of two, its claims or denies label, else the one that says something (refusal, not no_refusal)
    const preferred = new Set(meta.stats.hallucination.filter((r) => r.scorer === scorer).map((r) => r.label));
    const rank = (l) => 2 * !preferred.has(l) + NEGATIVE.test(l);
    return labels.length === 2 ? [[...labels].sort((a, b) => rank(a) - rank(b))[0]] : labels;
  }

  // Every scorer and label shown, each variant's rate over all its answers: variants as columns.
  function headline(stats) {
    const variants = [...new Set(stats.rates.map((r) => r.variant))].sort();
    const rows = [];
    for (const scorer of [...new Set(stats.rates.map((r) => r.scorer))]) {
      const rates = stats.rates.filter((r) => r.scorer === scorer && r.category === null);
      for (const label of shownLabels(scorer, rates)) {
        rows.push([`${scorer} = ${label}`, ...variants.map((v) => interval(rates.find((r) => r.variant === v && r.label === label)))]);
      }
    }
    return rows.length ? scroll(table(["scorer = label", ...variants], rows, [false, ...variants.map(() => true)])) : null;
  }

  function statistics() {
    const section = $("statistics");
    const stats = meta.stats;
    const split = stats.by.length ? stats.by.join(", ") : "category";
    if (stats.hallucination.length) section.append(...hallucinationView(stats, "h2"));
    const top = headline(stats);
    if (top) section.append(el("h2", {}, "Every scorer and label over all answers, 95% Wilson interval"), top);
    const every = [...stats.hallucination_comparisons, ...stats.comparisons];
    const significant = every.filter((c) => c.p_adjusted <= 0.05);
    if (every.length) {
      section.append(el("h2", {}, `Significant differences: Benjamini-Hochberg adjusted p <= 0.05 (${stats.family})`));
      section.append(significant.length
        ? scroll(comparisonTable(significant, { scorer: (c) => c.scorer, label: (c) => c.label, items: (c) => c.split || "(all)" }))
        : el("p", { class: "muted" }, `None of the ${count(every.length)} paired comparisons.`));
    }
    for (const scorer of [...new Set(stats.rates.map((r) => r.scorer))]) {
      const rates = stats.rates.filter((r) => r.scorer === scorer);
      const variants = [...new Set(rates.map((r) => r.variant))].sort();
      const categories = [...new Set(rates.filter((r) => r.category !== null).map((r) => r.category))].sort();
      for (const label of shownLabels(scorer, rates)) {
        section.append(el("h2", {}, `${scorer} = ${label}: rate per ${split}, 95% Wilson interval`));
        section.append(scroll(table(
          [split, ...variants],
          [...categories, null].map((c) => [c === null ? "(all)" : c, ...variants.map((v) =>
            interval(rates.find((r) => r.variant === v && r.category === c && r.label === label)))]),
          [false, ...variants.map(() => true)])));
      }
    }
    if (stats.comparisons.length) {
      const lead = { scorer: (c) => c.scorer, label: (c) => c.label };
      if (stats.by.length) lead[split] = (c) => c.split || "(all)";
      section.append(el("details", { class: "run" },
        el("summary", {}, `All ${count(stats.comparisons.length)} paired comparisons: exact McNemar, Benjamini-Hochberg ${stats.family}`),
        scroll(comparisonTable(stats.comparisons, lead))));
    }
    if (stats.separations.length) {
      section.append(el("h2", {}, `Uncertainty from token logprobs: AUROC` +
        (stats.resamples ? `, 95% bootstrap interval (${count(stats.resamples)} resamples, seed ${stats.seed})` : "")));
      section.append(scroll(table(
        ["variant", "measure", "target", "positives", "negatives", "AUROC", "95% interval"],
        stats.separations.map((s) => [s.variant, s.measure, s.target, count(s.positives), count(s.negatives),
          fixed(s.auroc, 3), s.low === null ? "-" : `${fixed(s.low, 3)} – ${fixed(s.high, 3)}`]),
        [false, false, false, true, true, true, true])));
    }
    if (!section.childElementCount) section.append(el("p", { class: "muted" }, "No statistics."));
  }

  // ---- records ----
  async function inflate() {
    const text = atob(document.getElementById("records-data").textContent.trim());
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }

  const state = { matches: new Int32Array(0), page: 0 };
  let data = null;
  let lowered = null; // each row's text in lower case, made at the first search
  let promptLowered = null;

  function options(select, entries) {
    select.replaceChildren(...entries.map(([value, label]) => el("option", { value }, label)));
  }

  // [value, name] of each name (its code after `prefix`), by name
  function byName(names, prefix = "") {
    const pairs = names.map((name, code) => [`${prefix}${code}`, name]);
    return pairs.sort(([, a], [, b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  function setUpFilters() {
    options($("f-variant"), [["", "any"], ...byName(data.variants)]);
    options($("f-category"), [["", "any"], ...byName(data.categories)]);
    options($("f-error"), [["", "any"], ...byName(data.error_types)]);
    const labels = [["", "any"]];
    data.scorers.forEach((s, n) => {
      byName(s.labels, `${n}:`).forEach(([value, label]) => labels.push([value, `${s.name}: ${label}`]));
      labels.push([`${n}:-1`, `${s.name}: (no current score)`]);
    });
    options($("f-label"), labels);
    for (const id of ["f-variant", "f-category", "f-probe", "f-status", "f-error", "f-label", "f-logprobs"]) {
      $(id).addEventListener("change", refilter);
    }
    let timer = null;
    $("f-search").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(refilter, 150); });
    $("filters").addEventListener("submit", (event) => { event.preventDefault(); refilter(); });
    $("prev").addEventListener("click", () => { if (state.page > 0) { state.page--; render(); } });
    $("next").addEventListener("click", () => {
      if ((state.page + 1) * PAGE_SIZE < state.matches.length) { state.page++; render(); }
    });
    const head = ["variant", "prompt", "sample", "category", "probe", "status",
      ...data.scorers.map((s) => s.name), "answer", "out tok", "latency s"];
    $("table-head").replaceChildren(...head.map((h) => el("th", {}, h)));
  }

  function refilter() {
    const rows = data.rows;
    const prompts = data.prompts;
    const pick = (id) => ($(id).value === "" ? null : Number($(id).value));
    const variant = pick("f-variant"), category = pick("f-category"), error = pick("f-error");
    const probe = pick("f-probe");
    const status = $("f-status").value;
    const label = $("f-label").value;
    const [scorerAt, labelCode] = label ? label.split(":").map(Number) : [null, null];
    const labelColumn = scorerAt === null ? null : rows.labels[data.scorers[scorerAt].name];
    const withLogprobs = $("f-logprobs").checked;
    const query = $("f-search").value.trim().toLowerCase();
    let promptHit = null;
    if (query) {
      if (lowered === null) {
        lowered = rows.text.map((t) => t.toLowerCase());
        promptLowered = prompts.id.map((id, i) => (id + "\n" + (prompts.text[i] || "")).toLowerCase());
      }
      promptHit = new Uint8Array(prompts.id.length);
      for (let p = 0; p < promptHit.length; p++) promptHit[p] = promptLowered[p].includes(query) ? 1 : 0;
    }
    const found = new Int32Array(rows.variant.length);
    let n = 0;
    for (let i = 0; i < rows.variant.length; i++) {
      const prompt = rows.prompt[i];
      if (variant !== null && rows.variant[i] !== variant) continue;
      if (category !== null && prompts.category[prompt] !== category) continue;
      if (probe !== null && prompts.probe[prompt] !== probe) continue;
      if (status === "ok" && !rows.ok[i]) continue;
      if (status === "error" && rows.ok[i]) continue;
      if (error !== null && rows.error[i] !== error) continue;
      if (labelColumn !== null && labelColumn[i] !== labelCode) continue;
      if (withLogprobs && rows.logprobs[i] < 0) continue;
      if (query && !promptHit[prompt] && !lowered[i].includes(query)) continue;
      found[n++] = i;
    }
    state.matches = found.subarray(0, n);
    state.page = 0;
    render();
  }

  function statusText(i) {
    return data.rows.ok[i] ? "ok" : "failed: " + data.error_types[data.rows.error[i]];
  }

  function labelText(scorer, i) {
    const code = data.rows.labels[scorer.name][i];
    return code < 0 ? "-" : scorer.labels[code];
  }

  function render() {
    const rows = data.rows;
    const total = state.matches.length;
    const first = state.page * PAGE_SIZE;
    const shown = state.matches.subarray(first, first + PAGE_SIZE);
    const count_ = $("count");
    count_.dataset.count = String(total);
    count_.textContent = `${count(total)} of ${count(rows.variant.length)} records`;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    $("page").textContent = `page ${count(state.page + 1)} of ${count(pages)}`;
    $("prev").disabled = state.page === 0;
    $("next").disabled = first + PAGE_SIZE >= total;
    const body = [];
    for (const i of shown) {
      const prompt = rows.prompt[i];
      const text = rows.text[i];
      const tr = el("tr", { "data-row": i },
        el("td", { class: "nowrap" }, data.variants[rows.variant[i]]),
        el("td", { class: "nowrap" }, data.prompts.id[prompt]),
        el("td", { class: "num" }, rows.sample[i]),
        el("td", {}, data.categories[data.prompts.category[prompt]]),
        el("td", {}, data.prompts.probe[prompt] ? "yes" : "no"),
        el("td", { class: rows.ok[i] ? null : "status-error" }, statusText(i)),
        data.scorers.map((s) => el("td", {}, labelText(s, i))),
        el("td", { class: "answer" }, text.length > SNIPPET ? text.slice(0, SNIPPET) + "…" : text),
        el("td", { class: "num" }, rows.tokens[i] < 0 ? "-" : count(rows.tokens[i])),
        el("td", { class: "num" }, fixed(rows.latency[i], 2)));
      tr.addEventListener("click", () => detail(i));
      body.push(tr);
    }
    $("rows").replaceChildren(...body);
  }

  // ---- one prompt's answers side by side ----
  function detail(row) {
    const rows = data.rows;
    const prompt = rows.prompt[row];
    $("detail-title").textContent = data.prompts.id[prompt];
    $("detail-meta").textContent =
      `category ${data.categories[data.prompts.category[prompt]]} · ` +
      (data.prompts.probe[prompt] ? "synthetic probe" : "not a probe");
    const fields = Object.entries(data.prompts.metadata[prompt] || {});
    $("detail-fields").replaceChildren(...fields.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]).flat());
    const text = data.prompts.text[prompt];
    $("detail-prompt").textContent = text === null ? "(the prompt's text is not in this report: see its notes)" : text;
    const cards = [];
    for (let i = 0; i < rows.prompt.length; i++) {
      if (rows.prompt[i] === prompt) cards.push(i);
    }
    cards.sort((a, b) => rows.variant[a] - rows.variant[b] || rows.sample[a] - rows.sample[b]);
    $("answers").replaceChildren(...cards.map(answerCard));
    show("detail");
  }

  function answerCard(i) {
    const rows = data.rows;
    const facts = [statusText(i), ...data.scorers.map((s) => `${s.name}: ${labelText(s, i)}`)];
    if (rows.tokens[i] >= 0) facts.push(`${count(rows.tokens[i])} output tokens`);
    if (rows.latency[i] !== null) facts.push(`${fixed(rows.latency[i], 2)} s`);
    if (rows.retries[i]) facts.push(`${rows.retries[i]} retries`);
    const text = rows.text[i];
    const cut = text.length >= meta.limits.answer_chars ? ` (cut at ${count(meta.limits.answer_chars)} characters)` : "";
    const card = el("div", { class: "answer-card", "data-variant": data.variants[rows.variant[i]] },
      el("h4", {}, `${data.variants[rows.variant[i]]} · sample ${rows.sample[i]}`),
      el("div", { class: "facts" }, facts.join(" · ") + cut),
      el("pre", { class: rows.ok[i] ? "answer-text" : "answer-text status-error" }, text));
    if (rows.logprobs[i] >= 0) card.append(tokens(data.logprobs[rows.logprobs[i]]));
    return card;
  }

  function tokens(lp) {
    const box = el("div", { class: "tokens" },
      el("div", { class: "legend-scale" }, "tokens, coloured by probability (green: likely, red: unlikely); hover for the top alternatives"));
    lp.t.forEach((token, n) => {
      const p = lp.p[n] === null ? null : Math.exp(lp.p[n]);
      const span = el("span", { class: "token", "data-position": n }, token);
      span.style.background = p === null ? "#e0e0e0" : `hsl(${Math.round(120 * p)}, 70%, 82%)`;
      span.addEventListener("mouseenter", (event) => tooltip(event, lp, n));
      span.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
      box.append(span);
    });
    return box;
  }

  function tooltip(event, lp, n) {
    const tip = $("tooltip");
    const rows = lp.a[n].map((token, k) => {
      const q = lp.q[n][k];
      const chosen = token === lp.t[n];
      return el("tr", {}, el("td", { class: chosen ? "chosen" : null }, JSON.stringify(token)),
        el("td", { class: "num" }, q === null ? "?" : (100 * Math.exp(q)).toFixed(1) + "%"),
        el("td", { class: "num" }, q === null ? "" : q.toFixed(3)));
    });
    const p = lp.p[n];
    tip.replaceChildren(
      el("div", {}, `chosen ${JSON.stringify(lp.t[n])}: ` + (p === null ? "?" : (100 * Math.exp(p)).toFixed(1) + "%")),
      el("table", {}, el("tr", {}, el("th", {}, `top ${lp.a[n].length}`), el("th", {}, "p"), el("th", {}, "logprob")), rows));
    tip.hidden = false;
    const box = event.target.getBoundingClientRect();
    tip.style.left = Math.min(box.left, window.innerWidth - tip.offsetWidth - 8) + "px";
    tip.style.top = (box.bottom + 6 + tip.offsetHeight > window.innerHeight ? box.top - tip.offsetHeight - 6 : box.bottom + 6) + "px";
  }

  $("back").addEventListener("click", () => show("records"));

  overview();
  statistics();
  const ready = (async () => {
    if (typeof DecompressionStream === "undefined") {
      $("count").textContent = "This browser cannot inflate the records (no DecompressionStream): open the report in a current Chrome, Firefox or Safari.";
      return;
    }
    data = await inflate();
    setUpFilters();
    refilter();
    window.harnessReport.firstRender = performance.now();
    document.body.dataset.ready = "1";
  })();
  window.harnessReport = { ready };
})();
