// fakedriver's dashboard: the timeline as a sequence diagram, the state as a tree, the
// leak audit and the fault rules. Plain JavaScript, no framework, nothing fetched but the
// control API of the page's own origin (live), or nothing at all (a report, its data
// inlined). The list renders only the rows in view, so 10,000 calls cost what 40 do.
"use strict";
(function () {
  const ROW = 30; // px, as .row's height in dashboard.css (--row)
  const OVERSCAN = 10;
  const POLL_MS = 600;
  const KEEP = 50000; // calls the live page keeps (the oldest go first)
  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("fakedriver-config").textContent);
  const report = JSON.parse($("fakedriver-data").textContent); // null: live
  const live = report === null;
  const key = document.querySelector('meta[name="fakedriver-key"]').content;

  // -- building the DOM (text always as text: nothing a call holds is read as HTML) ------
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const short = (id) => (typeof id === "string" && /^[0-9a-f]{64}$/.test(id) ? id.slice(0, 12) : String(id));
  const clock = (ts) => (ts ? new Date(ts * 1000).toISOString().slice(11, 23) : "");
  const pretty = (value) => JSON.stringify(value, null, 2);

  // -- the model ---------------------------------------------------------------------------
  const model = {
    lanes: [], // {name, state, leaks, faults, seen: {state, leaks, faults}}
    rows: [], // {lane, call}: the timeline, in the order the calls were served
    shown: [], // positions in rows that pass the filters, ascending
    cuts: [], // partitions: {lane, mode, start, end}, times as the calls' timestamps
    seqOf: new Map(), // "lane:index" -> position in rows
    methods: new Set(),
    selected: -1,
    next: 0, // live: the next journal index to ask for
    first: 0,
    evicted: 0,
    audit: null,
  };
  const filters = { method: "", verdict: "", network: "", lane: "" };

  function verdict(call) {
    if (call.status === 0) return "dropped";
    return call.error === null || call.error === undefined ? "ok" : "error";
  }
  function label(method) {
    const [subsystem, name] = method.includes(".") ? method.split(".", 2) : ["", method];
    return subsystem === "IpamDriver" ? `IPAM ${name}` : name;
  }
  function passes(row) {
    const call = row.call;
    if (filters.method && call.method !== filters.method) return false;
    if (filters.lane !== "" && String(row.lane) !== filters.lane) return false;
    if (filters.verdict === "fault") {
      if (!call.fault) return false;
    } else if (filters.verdict === "violation") {
      if (!(call.violations && call.violations.length)) return false;
    } else if (filters.verdict && verdict(call) !== filters.verdict) return false;
    if (filters.network) {
      const nid = call.request && call.request.NetworkID;
      if (typeof nid !== "string" || !nid.startsWith(filters.network)) return false;
    }
    return true;
  }
  function add(lane, calls) {
    const start = model.rows.length;
    for (const call of calls) {
      model.seqOf.set(`${lane}:${call.index}`, model.rows.length);
      model.rows.push({ lane, call });
      if (!model.methods.has(call.method)) {
        model.methods.add(call.method);
        methodsChanged = true;
      }
    }
    for (let seq = start; seq < model.rows.length; seq++) if (passes(model.rows[seq])) model.shown.push(seq);
  }
  function refilter() {
    model.shown = [];
    model.rows.forEach((row, seq) => passes(row) && model.shown.push(seq));
    renderRows();
  }
  function positionOf(seq) {
    // model.shown is ascending: a binary search
    let low = 0;
    let high = model.shown.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (model.shown[mid] === seq) return mid;
      if (model.shown[mid] < seq) low = mid + 1;
      else high = mid - 1;
    }
    return -1;
  }

  // -- the timeline: a sequence diagram, only the rows in view ------------------------------
  let methodsChanged = false;
  function xOf(lane) {
    // percent of the diagram's width: the client at 7, the lanes spread over 32..86
    if (lane < 0) return 7;
    const n = model.lanes.length;
    return n === 1 ? 80 : 32 + (lane * 54) / (n - 1);
  }
  function renderLanes() {
    const head = $("lanes");
    const cell = h("div", { class: "diagram" });
    cell.append(h("span", { class: "lane-name" }, "client"));
    model.lanes.forEach((lane, index) => cell.append(h("span", { class: "lane-name" }, lane.name)));
    [...cell.children].forEach((node, index) => {
      node.style.left = `${xOf(index - 1)}%`;
    });
    const row = h("div", { class: "row head" }, h("span", { class: "index" }, "#"), h("span", { class: "time" }, "time (UTC)"), cell, h("span", { class: "verdict" }, "answer"));
    row.style.position = "relative";
    head.replaceChildren(row);
    const select = $("filter-lane");
    $("filter-lane-label").hidden = model.lanes.length < 2;
    select.replaceChildren(h("option", { value: "" }, "every node"), ...model.lanes.map((lane, i) => h("option", { value: String(i) }, lane.name)));
  }
  function rowElement(pos) {
    const seq = model.shown[pos];
    const { lane, call } = model.rows[seq];
    const how = verdict(call);
    const selected = seq === model.selected;
    const node = h("div", {
      class: `row r-${how}${selected ? " selected" : ""}`,
      id: `call-${seq}`,
      role: "option",
      "aria-selected": selected ? "true" : "false",
      "data-seq": seq,
      "data-lane": model.lanes[lane].name,
      "data-verdict": how,
      "data-method": call.method,
    });
    node.style.top = `${pos * ROW}px`;
    const diagram = h("div", { class: "diagram" });
    for (let i = -1; i < model.lanes.length; i++) {
      const life = h("span", { class: "life" });
      life.style.left = `${xOf(i)}%`;
      diagram.append(life);
    }
    for (const cut of model.cuts) {
      if (call.timestamp >= cut.start && (cut.end === null || call.timestamp < cut.end)) {
        const band = h("span", { class: "cut", title: `${model.lanes[cut.lane].name} partitioned (${cut.mode})`, "data-lane": model.lanes[cut.lane].name });
        band.style.left = `${xOf(cut.lane)}%`;
        diagram.append(band);
      }
    }
    const from = xOf(-1);
    const to = xOf(lane);
    const arrow = h("span", { class: "arrow", title: call.method }, h("span", { class: "label" }, label(call.method)));
    arrow.style.left = `${from}%`;
    arrow.style.width = `${to - from}%`;
    diagram.append(arrow);
    if (how !== "dropped") {
      const back = h("span", { class: "arrow back" });
      back.style.left = `${from}%`;
      back.style.width = `${to - from}%`;
      back.style.top = "23px";
      back.style.borderTopStyle = "dotted";
      diagram.append(back);
    }
    const badges = h("span", { class: "verdict" });
    if (how === "ok") badges.append(h("span", { class: "badge b-ok" }, "ok"));
    else if (how === "dropped") badges.append(h("span", { class: "badge b-dropped" }, "no answer"), call.error || "");
    else badges.append(h("span", { class: "badge b-error" }, call.status === 200 ? "error" : `HTTP ${call.status}`), call.error);
    if (call.fault) badges.prepend(h("span", { class: "badge b-fault" }, `fault: ${call.fault}`));
    if (call.violations && call.violations.length) badges.append(h("span", { class: "badge b-violation" }, `~ ${call.violations.join("; ")}`));
    if (call.notes && call.notes.length) badges.append(h("span", { class: "badge b-note" }, `note: ${call.notes.join("; ")}`));
    badges.title = badges.textContent;
    node.append(h("span", { class: "index" }, `#${call.index}`), h("span", { class: "time" }, clock(call.timestamp)), diagram, badges);
    return node;
  }
  let frame = 0;
  function renderRows() {
    if (frame) return;
    frame = requestAnimationFrame(() => {
      frame = 0;
      drawRows();
    });
  }
  function drawRows() {
    const viewport = $("viewport");
    const spacer = $("spacer");
    const total = model.shown.length;
    spacer.style.height = `${total * ROW}px`;
    const start = Math.max(0, Math.floor(viewport.scrollTop / ROW) - OVERSCAN);
    const end = Math.min(total, Math.ceil((viewport.scrollTop + viewport.clientHeight) / ROW) + OVERSCAN);
    const rows = [];
    for (let pos = start; pos < end; pos++) rows.push(rowElement(pos));
    if (!total) rows.push(h("p", { class: "empty" }, model.rows.length ? "No call passes the filters." : "No calls yet."));
    spacer.replaceChildren(...rows);
    const active = model.selected >= 0 && $(`call-${model.selected}`);
    if (active) viewport.setAttribute("aria-activedescendant", active.id);
    else viewport.removeAttribute("aria-activedescendant");
    $("shown").textContent = `${total} of ${model.rows.length} calls` + (model.evicted ? ` (${model.evicted} older ones evicted from the journal)` : "");
    if (methodsChanged) {
      methodsChanged = false;
      const chosen = $("filter-method").value;
      const names = [...model.methods].sort();
      $("filter-method").replaceChildren(h("option", { value: "" }, "every method"), ...names.map((name) => h("option", { value: name }, name)));
      $("filter-method").value = chosen;
    }
  }
  function select(seq, scroll) {
    model.selected = seq;
    if (scroll) {
      const pos = positionOf(seq);
      const viewport = $("viewport");
      if (pos >= 0) {
        if (pos * ROW < viewport.scrollTop) viewport.scrollTop = pos * ROW;
        else if ((pos + 1) * ROW > viewport.scrollTop + viewport.clientHeight) viewport.scrollTop = (pos + 1) * ROW - viewport.clientHeight;
      }
    }
    renderRows();
    renderDetail();
  }
  function renderDetail() {
    const aside = $("detail");
    if (model.selected < 0 || model.selected >= model.rows.length) {
      aside.replaceChildren(h("p", { class: "hint" }, "Select a call (click it, or the arrow keys in the list) to see its request and answer."));
      return;
    }
    const { lane, call } = model.rows[model.selected];
    const facts = [];
    const fact = (name, value) => value !== null && value !== undefined && value !== "" && facts.push(h("dt", null, name), h("dd", null, value));
    if (model.lanes.length > 1) fact("served by", model.lanes[lane].name);
    fact("status", call.status === 0 ? "no answer" : String(call.status));
    fact("error", call.error);
    fact("fault", call.fault);
    for (const text of call.violations || []) fact("violation", text);
    for (const text of call.notes || []) fact("note", text);
    fact("served at", call.timestamp ? new Date(call.timestamp * 1000).toISOString() : "");
    aside.replaceChildren(
      h("h3", null, `#${call.index} ${call.method}`),
      h("dl", null, facts),
      h("h4", null, "Request"),
      h("pre", { class: "request" }, pretty(call.request)),
      h("h4", null, "Answer"),
      h("pre", { class: "answer" }, pretty(call.response))
    );
  }
  function showCall(lane, index) {
    const seq = model.seqOf.get(`${lane}:${index}`);
    if (seq === undefined) return;
    for (const name of Object.keys(filters)) filters[name] = "";
    for (const id of ["filter-method", "filter-verdict", "filter-network", "filter-lane"]) $(id).value = "";
    $("follow").checked = false;
    refilter();
    activate("timeline");
    select(seq, true);
    $("viewport").focus();
  }

  // -- the state, the leaks, the rules -----------------------------------------------------------
  function callLink(lane, index) {
    return h("span", { class: "from" }, " (", h("button", { type: "button", onclick: () => showCall(lane, index) }, `call #${index}`), ")");
  }
  function branch(id, summary, open, ...children) {
    return h("details", { "data-key": id, open }, h("summary", null, summary), ...children);
  }
  const kv = (name, value) => h("div", { class: "kv" }, `${name}: `, h("b", null, typeof value === "string" ? value : JSON.stringify(value)));
  function pools(data) {
    return (data || []).map((d) => `${d.Pool}${d.Gateway ? ` gw ${d.Gateway}` : ""}`).join(", ");
  }
  function stateTree(lane, index) {
    const state = lane.state || {};
    const nets = Object.entries(state.networks || {});
    const eps = state.endpoints || {};
    const children = nets.map(([nid, net]) =>
      branch(`${index}:n:${nid}`, h("span", null, "network ", h("span", { class: "id" }, short(nid)), ` ${pools(net.ipv4_data)} ${pools(net.ipv6_data)}`, callLink(index, net.call)), false,
        kv("id", nid),
        Object.keys(net.options || {}).length ? kv("options", net.options) : null,
        (net.endpoints || []).map((eid) => {
          const ep = eps[eid] || {};
          return branch(`${index}:e:${eid}`, h("span", null, "endpoint ", h("span", { class: "id" }, short(eid)), ` ${ep.address || ""} ${ep.address_v6 || ""} ${ep.mac || ""}`, ep.join ? " · joined" : "", callLink(index, ep.call)), false,
            kv("id", eid),
            ep.join ? branch(`${index}:j:${eid}`, h("span", null, `join ${ep.join.sandbox_key}`, callLink(index, ep.join.call)), true, kv("answer", ep.join.answer), Object.keys(ep.join.options || {}).length ? kv("options", ep.join.options) : null) : kv("join", "none"),
            ep.connectivity ? kv("external connectivity", ep.connectivity) : null);
        }))
    );
    const allocations = Object.entries(state.allocations || {}).map(([nid, a]) =>
      branch(`${index}:a:${nid}`, h("span", null, "allocated network ", h("span", { class: "id" }, short(nid)), ` ${pools(a.ipv4_data)}`, callLink(index, a.call)), false, kv("options", a.options)));
    const nodes = Object.entries(state.nodes || {}).map(([address, node]) => h("div", { class: "kv" }, `node ${address}${node.self ? " (self)" : ""} bind ${node.bind_address || "-"}`, callLink(index, node.call)));
    const poolList = Object.entries(state.pools || {}).map(([pid, pool]) =>
      branch(`${index}:p:${pid}`, h("span", null, "pool ", h("span", { class: "id" }, pid), ` ${pool.pool}${pool.sub_pool ? ` sub ${pool.sub_pool}` : ""} · ${Object.keys(pool.leases || {}).length} lease(s)`, callLink(index, pool.call)), false,
        Object.entries(pool.leases || {}).map(([address, lease]) => h("div", { class: "kv" }, `lease ${address} (${lease.kind})${lease.mac ? ` mac ${lease.mac}` : ""}`, callLink(index, lease.call)))));
    const violations = (state.violations || []).map((text) => h("li", null, text));
    return h("div", { class: "tree", "data-lane": lane.name },
      model.lanes.length > 1 ? h("h2", null, lane.name) : null,
      branch(`${index}:networks`, h("span", null, `Networks `, h("span", { class: "count" }, `(${nets.length})`)), true, children.length ? children : h("div", { class: "kv" }, "none")),
      allocations.length ? branch(`${index}:allocations`, `Swarm allocations (${allocations.length})`, true, allocations) : null,
      nodes.length ? branch(`${index}:nodes`, `Discovered nodes (${nodes.length})`, true, nodes) : null,
      branch(`${index}:pools`, h("span", null, "IPAM pools ", h("span", { class: "count" }, `(${poolList.length})`)), true, poolList.length ? poolList : h("div", { class: "kv" }, "none")),
      violations.length ? branch(`${index}:violations`, `Violations (${violations.length})`, true, h("ul", null, violations)) : null,
      h("p", { class: "meta" }, `daemon sessions (epoch) ${state.epoch ?? 0} · run ${state.run ?? 0}`));
  }
  function keepOpen(root, build) {
    // re-render without closing what the reader opened, nor losing the focus
    const opened = new Map([...root.querySelectorAll("details[data-key]")].map((d) => [d.dataset.key, d.open]));
    const focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement.closest("[data-key]") : null;
    const focusKey = focused && focused.dataset.key;
    root.replaceChildren(...build());
    for (const details of root.querySelectorAll("details[data-key]")) {
      if (opened.has(details.dataset.key)) details.open = opened.get(details.dataset.key);
    }
    if (focusKey) {
      const again = [...root.querySelectorAll("[data-key]")].find((d) => d.dataset.key === focusKey);
      if (again) (again.querySelector("summary") || again).focus();
    }
  }
  function renderState() {
    keepOpen($("state"), () => model.lanes.map(stateTree));
  }
  function leakItem(text, lane) {
    const found = /call #(\d+)/.exec(text);
    return h("li", { class: "leak" }, text, found && lane >= 0 ? h("span", null, " ", h("button", { type: "button", onclick: () => showCall(lane, Number(found[1])) }, "show the call")) : null);
  }
  function renderLeaks() {
    const parts = [];
    if (model.audit !== null) {
      parts.push(h("h2", null, "The cluster's audit: leaks of every node, the checks between nodes"));
      parts.push(model.audit.length ? h("ul", { class: "leaks" }, model.audit.map((text) => {
        const node = model.lanes.findIndex((lane) => text.startsWith(`${lane.name}: `));
        return leakItem(text, node);
      })) : h("p", { class: "clean" }, "Clean: nothing left behind."));
    } else {
      model.lanes.forEach((lane, index) => {
        if (model.lanes.length > 1) parts.push(h("h2", null, lane.name));
        const leaks = lane.leaks || [];
        parts.push(leaks.length ? h("ul", { class: "leaks", "data-lane": lane.name }, leaks.map((text) => leakItem(text, index))) : h("p", { class: "clean" }, "Clean: nothing left behind."));
      });
    }
    $("leaks").replaceChildren(h("p", { class: "meta" }, "What is still held, and every violation, each with the call that made it (the leak audit)."), ...parts);
  }
  const WHEN = ["match", "nth", "times", "after", "every", "probability", "phase"];
  const WHAT = ["message", "status", "body", "seconds", "answer"];
  function ruleTable(lane, index) {
    const faults = lane.faults || { faults: [] };
    const rows = faults.faults.map((rule, n) => h("tr", { "data-rule": n },
      h("td", { class: "num" }, String(n)),
      h("td", null, rule.name),
      h("td", null, rule.method),
      h("td", null, rule.kind),
      h("td", null, WHEN.filter((f) => f in rule).map((f) => `${f} ${typeof rule[f] === "string" ? rule[f] : JSON.stringify(rule[f])}`).join(", ") || "every call"),
      h("td", null, WHAT.filter((f) => f in rule && !(f === "seconds" && rule[f] === 0)).map((f) => `${f} ${typeof rule[f] === "string" ? rule[f] : JSON.stringify(rule[f])}`).join(", ")),
      h("td", { class: "num seen" }, String(rule.seen ?? 0)),
      h("td", { class: "num fired" }, String(rule.fired ?? 0)),
      live ? h("td", null, h("button", { type: "button", class: "remove", "aria-label": `Remove rule ${n}, ${rule.name}`, onclick: () => act(() => api("DELETE", `/fakedriver/faults/${n}`, { name: rule.name }), "action-error") }, "Remove")) : null));
    return h("div", { "data-lane": lane.name },
      model.lanes.length > 1 ? h("h2", null, lane.name) : null,
      h("p", { class: "meta" }, `Phase: ${faults.phase ?? "(none)"} · seed ${faults.seed ?? 0} · ${faults.faults.length} rule(s), checked in order`),
      faults.faults.length ? h("table", { class: "rules" },
        h("thead", null, h("tr", null, ["#", "name", "method", "kind", "when", "what", "seen", "fired", live ? "" : null].filter((x) => x !== null).map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", null, rows)) : h("p", { class: "empty" }, "No fault rules."));
  }
  function renderFaults() {
    const focused = document.activeElement && document.activeElement.classList.contains("remove") ? document.activeElement.closest("tr").dataset.rule : null;
    $("faults").replaceChildren(...model.lanes.map(ruleTable));
    if (live && model.lanes[0].faults && document.activeElement === document.body) $("phase").placeholder = model.lanes[0].faults.phase ?? "(none)";
    if (focused !== null) {
      const again = $("faults").querySelector(`tr[data-rule="${focused}"] .remove`) || $("faults").querySelector(".remove");
      (again || $("add-rule-button")).focus();
    }
  }

  // -- the control API (live) ------------------------------------------------------------------
  class ApiError extends Error {}
  async function api(verb, path, body) {
    const init = { method: verb, headers: { "X-Fakedriver-Key": key }, cache: "no-store" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const answer = await fetch(path, init);
    let data;
    try {
      data = await answer.json();
    } catch (error) {
      data = {};
    }
    if (!answer.ok) throw new ApiError(data.Err || data.Error || `HTTP ${answer.status}`);
    return data;
  }
  async function act(action, errorId) {
    const box = $(errorId);
    try {
      await action();
      box.hidden = true;
      box.textContent = "";
    } catch (error) {
      box.textContent = error.message;
      box.hidden = false;
    }
    await refresh(true);
  }
  function changed(lane, name, value) {
    const text = JSON.stringify(value);
    if (lane.seen[name] === text) return false;
    lane.seen[name] = text;
    lane[name] = value;
    return true;
  }
  // a view in a hidden tab is drawn when its tab is shown (a tree of 2,500 networks costs)
  const stale = new Set();
  const drawers = { state: () => renderState(), leaks: () => renderLeaks(), faults: () => renderFaults() };
  function redraw(view) {
    if ($(`view-${view}`).hidden) stale.add(view);
    else {
      stale.delete(view);
      drawers[view]();
    }
  }
  let rendered = false;
  let polling = false;
  let wanted = false; // an action asked for the rules, state and leaks while a poll ran
  async function refresh(side) {
    if (polling) {
      wanted = wanted || side;
      return;
    }
    polling = true;
    side = side || wanted;
    wanted = false;
    try {
      const got = await api("GET", `/fakedriver/calls?since=${model.next}`);
      if (got.next < model.next) {
        // the journal was reset: start again
        model.rows = [];
        model.shown = [];
        model.seqOf.clear();
        model.selected = -1;
        model.next = 0;
        model.evicted = 0;
        renderDetail();
        polling = false;
        return await refresh(true);
      }
      const lane = model.lanes[0];
      model.evicted += got.evicted;
      model.next = got.next;
      model.first = got.first;
      if (got.calls.length) {
        add(0, got.calls);
        if (model.rows.length > KEEP) {
          const drop = model.rows.length - KEEP;
          const kept = model.rows.slice(drop);
          model.rows = [];
          model.seqOf.clear();
          model.shown = [];
          model.selected = model.selected >= drop ? model.selected - drop : -1;
          add(0, kept.map((row) => row.call));
          model.evicted += drop;
        }
        if ($("follow").checked) followNewest();
        renderRows();
      }
      if (!rendered) markRendered(); // the timeline is drawn: the rest follows
      if (got.calls.length || side) {
        const [faults, state, leaks] = await Promise.all([api("GET", "/fakedriver/faults"), api("GET", "/fakedriver/state"), api("GET", "/fakedriver/leaks")]);
        if (changed(lane, "faults", faults)) redraw("faults");
        if (changed(lane, "state", state)) redraw("state");
        if (changed(lane, "leaks", leaks.leaks)) redraw("leaks");
      }
      status(`live: ${got.next} call(s) served, updated ${new Date().toLocaleTimeString()}`, false);
    } catch (error) {
      status(`cannot reach the server: ${error.message}`, true);
    } finally {
      polling = false;
    }
    if (!rendered) markRendered();
  }
  function followNewest() {
    const viewport = $("viewport");
    viewport.scrollTop = model.shown.length * ROW;
    drawRows();
    viewport.scrollTop = viewport.scrollHeight;
  }
  function status(text, down) {
    $("status").textContent = text;
    $("status").classList.toggle("down", down);
  }
  function markRendered() {
    rendered = true;
    drawRows();
    performance.mark("fakedriver-rendered");
    document.body.dataset.rendered = "yes";
  }
  let ticks = 0;
  async function poll() {
    ticks += 1;
    await refresh(ticks % 5 === 0 || wanted);
    setTimeout(poll, POLL_MS);
  }

  // -- the controls --------------------------------------------------------------------------
  const views = ["timeline", "state", "leaks", "faults"];
  function activate(name) {
    for (const view of views) {
      const tab = $(`tab-${view}`);
      const on = view === name;
      tab.setAttribute("aria-selected", on ? "true" : "false");
      tab.tabIndex = on ? 0 : -1;
      $(`view-${view}`).hidden = !on;
    }
    if (name === "timeline") renderRows();
    else if (stale.has(name)) redraw(name);
  }
  function wire() {
    for (const view of views) {
      const tab = $(`tab-${view}`);
      tab.addEventListener("click", () => activate(view));
      tab.addEventListener("keydown", (event) => {
        const at = views.indexOf(view);
        const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: views.length - 1 }[event.key];
        if (to === undefined) return;
        event.preventDefault();
        const next = views[(to + views.length) % views.length];
        activate(next);
        $(`tab-${next}`).focus();
      });
    }
    const viewport = $("viewport");
    viewport.addEventListener("scroll", () => {
      renderRows();
      if (live) $("follow").checked = viewport.scrollTop + viewport.clientHeight >= viewport.scrollHeight - ROW;
    });
    window.addEventListener("resize", renderRows);
    $("spacer").addEventListener("click", (event) => {
      const row = event.target.closest(".row");
      if (row) select(Number(row.dataset.seq), false);
    });
    viewport.addEventListener("keydown", (event) => {
      const page = Math.max(1, Math.floor(viewport.clientHeight / ROW) - 1);
      const at = model.selected >= 0 ? positionOf(model.selected) : -1;
      const to = { ArrowDown: at + 1, ArrowUp: at < 0 ? 0 : at - 1, PageDown: at + page, PageUp: at - page, Home: 0, End: model.shown.length - 1 }[event.key];
      if (to === undefined || !model.shown.length) return;
      event.preventDefault();
      select(model.shown[Math.min(Math.max(to, 0), model.shown.length - 1)], true);
    });
    const form = $("filters");
    form.addEventListener("submit", (event) => event.preventDefault());
    form.addEventListener("input", () => {
      filters.method = $("filter-method").value;
      filters.verdict = $("filter-verdict").value;
      filters.network = $("filter-network").value.trim();
      filters.lane = $("filter-lane").value;
      refilter();
    });
    if (!live) {
      $("actions").hidden = true;
      $("follow").parentElement.hidden = true;
      return;
    }
    const kinds = $("rule-kind");
    for (const [name, help] of Object.entries(config.kinds)) kinds.append(h("option", { value: name, title: help }, name));
    $("methods").replaceChildren(...["*", ...config.methods].map((name) => h("option", { value: name })));
    const own = { status: "status", body: "status", seconds: "latency", answer: "answer" };
    const showKind = () => {
      $("kind-help").textContent = `${kinds.value}: ${config.kinds[kinds.value]}`;
      for (const [field, kind] of Object.entries(own)) $("add-rule").elements[field].parentElement.hidden = kinds.value !== kind;
    };
    kinds.addEventListener("change", showKind);
    showKind();
    $("add-rule").addEventListener("submit", (event) => {
      event.preventDefault();
      const rule = {};
      for (const field of $("add-rule").elements) {
        if (!field.name || field.parentElement.hidden || field.value.trim() === "") continue;
        const text = field.value.trim();
        if (["status", "nth", "times", "after", "every", "seconds", "probability"].includes(field.name) && text !== "" && Number.isFinite(Number(text))) rule[field.name] = Number(text);
        else if (["answer", "match"].includes(field.name)) {
          try {
            rule[field.name] = JSON.parse(text);
          } catch (error) {
            rule[field.name] = text; // the control API says what is wrong with it
          }
        } else rule[field.name] = text;
      }
      act(() => api("POST", "/fakedriver/faults", rule), "rule-error");
    });
    $("release").addEventListener("click", () => act(() => api("POST", "/fakedriver/faults/release", {}), "action-error"));
    $("clear-rules").addEventListener("click", () => act(() => api("DELETE", "/fakedriver/faults"), "action-error"));
    const reset = $("reset");
    let armed = 0;
    reset.addEventListener("click", () => {
      if (!armed) {
        reset.textContent = "Sure? Click again to forget everything";
        armed = setTimeout(() => {
          armed = 0;
          reset.textContent = "Reset: forget state, journal and rules";
        }, 5000);
        return;
      }
      clearTimeout(armed);
      armed = 0;
      reset.textContent = "Reset: forget state, journal and rules";
      act(() => api("POST", "/fakedriver/reset", {}), "action-error");
    });
    $("phase-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const phase = $("phase").value.trim();
      act(() => api("PUT", "/fakedriver/phase", { phase: phase || null }), "action-error");
    });
  }

  // -- start ------------------------------------------------------------------------------------
  function start() {
    wire();
    if (live) {
      model.lanes = [{ name: config.title, faults: null, state: null, leaks: [], seen: {} }];
      renderLanes();
      poll();
      return;
    }
    model.lanes = report.lanes.map((lane) => ({ ...lane, seen: {} }));
    model.cuts = report.cuts || [];
    model.audit = report.audit === undefined ? null : report.audit;
    renderLanes();
    if (report.order) {
      const byIndex = model.lanes.map((lane) => new Map(lane.calls.map((call) => [call.index, call])));
      for (const [lane, index] of report.order) {
        const call = byIndex[lane].get(index);
        if (call) add(lane, [call]);
      }
    } else {
      const all = [];
      model.lanes.forEach((lane, index) => lane.calls.forEach((call) => all.push([index, call])));
      all.sort((a, b) => a[1].timestamp - b[1].timestamp || a[0] - b[0] || a[1].index - b[1].index);
      for (const [lane, call] of all) add(lane, [call]);
    }
    if (report.failure) {
      $("failure").hidden = false;
      $("failure-text").textContent = report.failure;
      $("failure-text").scrollTop = $("failure-text").scrollHeight; // the error is last
    }
    status(`${model.rows.length} call(s)${model.lanes.length > 1 ? ` on ${model.lanes.length} ${report.order ? "nodes" : "fakes"}` : ""}: a report, written when the test failed`, false);
    for (const view of ["state", "leaks", "faults"]) redraw(view);
    markRendered();
  }
  start();
})();
