// Builds the graphc compile report from the JSON in #report-data (see
// graphc/report/page.py).  Heavy parts (graph layout, code) are built when first shown.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }
  function pre(text, cls) { return el("pre", {class: cls || ""}, text); }
  function diffBlock(text) {
    const p = el("pre", {class: "diff"});
    for (const line of text.split("\n")) {
      const cls = line.startsWith("+") ? "diff-add" : line.startsWith("-") ? "diff-del" : "";
      p.append(el("span", {class: cls}, line + "\n"));
    }
    return p;
  }
  function details(summary, body, open) {
    const d = el("details", open ? {open: ""} : {}, el("summary", {}, summary));
    d.addEventListener("toggle", () => { if (d.open && d.children.length === 1) d.append(body()); });
    if (open) d.append(body());
    return d;
  }
  function tabs(names, build, initial) {
    const bar = el("div", {class: "tabs"}), body = el("div", {class: "tab-body"});
    const built = {}, buttons = {};
    function show(name, rebuild) {
      if (rebuild && built[name]) { built[name].remove(); delete built[name]; }
      for (const [n, b] of Object.entries(buttons)) b.classList.toggle("active", n === name);
      for (const n of Object.keys(built)) built[n].hidden = n !== name;
      if (!built[name]) { built[name] = el("div", {"data-tab": name}, build(name, show)); body.append(built[name]); }
      return built[name];
    }
    for (const n of names) { buttons[n] = el("button", {"data-tab": n, onclick: () => show(n)}, n); bar.append(buttons[n]); }
    const box = el("div", {}, bar, body);
    show(initial || names[0]);
    return box;
  }

  // ---- one compile -------------------------------------------------------------------------
  function guardsTab(c) {
    const box = el("div", {});
    box.append(el("div", {class: "reason"}, c.reason ? "recompiled because: " + c.reason : "first compile"));
    box.append(el("h4", {}, `${c.guards.length} guards (all must pass for this program to run)`));
    box.append(pre(c.guards.join("\n")));
    return box;
  }
  function irTab(c) {
    const box = el("div", {});
    for (const s of c.stages) {
      const head = `${s.name} (${s.ops} ops)` + (s.summary ? ": " + s.summary : "");
      box.append(details(head, () => el("div", {},
        s.diff ? diffBlock(s.diff) : null,
        details("full text", () => pre(s.text)))));
    }
    return box;
  }

  function layoutDagre(view) {
    const g = new dagre.graphlib.Graph({compound: true, multigraph: true});
    g.setGraph({rankdir: "TB", nodesep: 12, ranksep: 24, marginx: 8, marginy: 8});
    g.setDefaultEdgeLabel(() => ({}));
    for (const c of view.clusters) g.setNode(c.id, {label: c.label, cluster: true});
    for (const n of view.nodes) {
      g.setNode(n.id, {label: n.label, width: 14 + 7 * n.label.length, height: 22});
      if (n.parent) g.setParent(n.id, n.parent);
    }
    view.edges.forEach((e, i) => g.setEdge(e.from, e.to, {}, "e" + i));
    dagre.layout(g);
    const info = g.graph();
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("width", info.width + 16); svg.setAttribute("height", info.height + 16);
    function add(parent, tag, attrs, title) {
      const e = document.createElementNS(SVG, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (title) { const t = document.createElementNS(SVG, "title"); t.textContent = title; e.append(t); }
      parent.append(e); return e;
    }
    for (const c of view.clusters) {
      const b = g.node(c.id);
      const grp = add(svg, "g", {id: c.id, class: "cluster"}, c.label);
      add(grp, "rect", {x: b.x - b.width / 2, y: b.y - b.height / 2, width: b.width, height: b.height, rx: 4, fill: "#eef3fb", stroke: "#8aa"});
      add(grp, "text", {x: b.x - b.width / 2 + 4, y: b.y - b.height / 2 + 11, "font-size": 10}).textContent = c.label;
    }
    view.edges.forEach((e, i) => {
      const pts = g.edge({v: e.from, w: e.to, name: "e" + i}).points.map(p => p.x + "," + p.y).join(" ");
      add(svg, "polyline", {points: pts, fill: "none", stroke: e.unfused ? "#c0392b" : "#888"}, e.tooltip);
    });
    for (const n of view.nodes) {
      const b = g.node(n.id);
      const grp = add(svg, "g", {id: n.id, class: "node"}, n.tooltip);
      add(grp, "rect", {x: b.x - b.width / 2, y: b.y - b.height / 2, width: b.width, height: b.height, rx: 5, fill: "#fff", stroke: "#333"});
      add(grp, "text", {x: b.x, y: b.y + 4, "text-anchor": "middle", "font-size": 11}).textContent = n.label;
    }
    return svg;
  }

  function graphTab(c, openKernel) {
    const box = el("div", {});
    for (const p of c.programs) {
      const d = p.drawing, holder = el("div", {class: "graph", "data-program": p.name});
      const count = el("span", {});
      let current = null;
      function showView(name) {
        holder.replaceChildren();
        if (d.engine === "dot") holder.innerHTML = d.svg[name];
        else holder.append(layoutDagre(d.views[name]));
        current = name; search.dispatchEvent(new Event("input"));
      }
      const search = el("input", {type: "search", placeholder: "search op or source line", size: 32});
      search.addEventListener("input", () => {
        const q = search.value.trim().toLowerCase();
        let hits = 0;
        for (const [id, entry] of Object.entries(d.index)) {
          const node = document.getElementById(id);
          if (!node || !holder.contains(node) || node.classList.contains("cluster")) continue;
          const hit = q !== "" && entry.text.toLowerCase().includes(q);
          node.classList.toggle("hit", hit);
          if (hit && hits++ === 0) node.scrollIntoView({block: "center", inline: "center"});
        }
        count.textContent = q ? `${hits} matches` : "";
      });
      holder.addEventListener("click", ev => {
        for (let t = ev.target; t && t !== holder; t = t.parentNode) {
          const entry = t.id && d.index[t.id];
          if (entry && entry.group !== null) { openKernel(p.name, entry.group); return; }
        }
      });
      box.append(el("h4", {}, `${p.name}: ${p.kernels.length} kernels (layout: ${d.engine === "dot" ? "Graphviz dot" : "dagre"})`),
        el("div", {class: "toolbar"},
          el("button", {onclick: () => showView("kernels")}, "kernels (collapsed)"),
          el("button", {onclick: () => showView("ops")}, "ops in fusion groups"),
          search, count, el("span", {}, "hover a node for its type and source line; click for its kernel")),
        holder);
      showView("kernels");
    }
    return box;
  }

  function profileBlock(k, profiled) {
    if (!k.profile) return el("p", {class: "profile"}, profiled ? "not profiled (this kernel has no timing)" : "not profiled (run with GRAPHC_PROFILE=1 for per-kernel times)");
    const r = k.profile, rows = [["calls", r.calls], ["total", (r.total_s * 1e3).toFixed(3) + " ms"],
      ["median", (r.median_s * 1e6).toFixed(1) + " us"], ["share", (100 * r.share).toFixed(1) + " %"]];
    if (r.bytes) rows.push(["bytes moved", r.bytes], ["GB/s", (r.bytes / r.median_s / 1e9).toFixed(2)]);
    if (r.flops) rows.push(["FLOPs", r.flops], ["GFLOP/s", (r.flops / r.median_s / 1e9).toFixed(2)]);
    return el("table", {class: "profile"}, ...rows.map(([a, b]) => el("tr", {}, el("th", {}, a), el("td", {}, String(b)))));
  }
  function kernelDetail(k, p) {
    return el("div", {class: "kernel-detail"},
      el("h4", {}, `${k.name} (${k.kind}${k.describe ? ", " + k.describe : ""})`),
      el("h5", {}, "profile"), profileBlock(k, p.profiled),
      el("h5", {}, "ops"), pre(k.ops.join("\n") || "(none)"),
      el("h5", {}, "source lines"), pre(k.sources.join("\n") || "(none recorded)"),
      el("h5", {}, "unfused edges"), pre([...k.unfused_in.map(e => "in:  " + e), ...k.unfused_out.map(e => "out: " + e)].join("\n") || "(none)"),
      el("h5", {}, "loop IR"), pre(k.loops),
      el("h5", {}, k.language || "code"), pre(k.code || "(no code of its own: a call in the entry)", "code"));
  }
  function kernelsTab(c, selected) {
    const box = el("div", {});
    for (const p of c.programs) {
      const list = el("div", {class: "kernel-list"}), detail = el("div", {class: "kernel-detail"});
      p.kernels.forEach((k, i) => {
        const share = k.profile ? ` ${(100 * k.profile.share).toFixed(1)}%` : "";
        const row = el("div", {"data-kernel": k.name, "data-group": k.group === null ? "" : k.group}, `${i}. ${k.name}${share}`);
        row.addEventListener("click", () => {
          for (const r of list.children) r.classList.toggle("active", r === row);
          detail.replaceChildren(kernelDetail(k, p));
        });
        list.append(row);
      });
      box.append(el("h4", {}, `${p.name}`), p.fusion_report ? details("fusion report", () => pre(p.fusion_report)) : null,
        el("div", {class: "kernels", "data-program": p.name}, list, detail));
      const want = selected && selected.program === p.name ? list.querySelector(`[data-group="${selected.group}"]`) : null;
      (want || list.firstChild || {click() {}}).click();
      if (want) want.scrollIntoView({block: "nearest"});
    }
    return box;
  }
  function memoryTab(c) {
    const box = el("div", {});
    for (const p of c.programs) {
      if (!p.memory) { box.append(el("p", {}, `${p.name}: no memory plan (this backend runs op by op)`)); continue; }
      const m = p.memory, holder = el("div", {});
      holder.innerHTML = m.svg;
      box.append(el("h4", {}, `${p.name}: ${m.buffers} temporaries over ${m.kernels} kernels, arena peak ${m.peak_bytes} bytes`), holder);
    }
    return box;
  }

  function compileView(fn, c) {
    if (c.graph_break !== null)
      return el("div", {class: "break"}, el("b", {}, `compile ${c.index}: graph break, runs eagerly`),
        c.reason ? el("div", {}, "recompiled because: " + c.reason) : null, pre(c.graph_break));
    let selected = null;
    const view = tabs(["graph", "kernels", "IR", "guards", "memory"], (name, show) => {
      if (name === "graph") return graphTab(c, (program, group) => {
        selected = {program, group};
        show("kernels", true);
      });
      if (name === "kernels") return kernelsTab(c, selected);
      if (name === "IR") return irTab(c);
      if (name === "guards") return guardsTab(c);
      return memoryTab(c);
    }, "graph");
    return el("div", {class: "compile", "data-compile": c.index}, view);
  }

  function functionView(fn, i) {
    const rows = fn.compiles.map(c => el("tr", {},
      el("td", {}, String(c.index)),
      el("td", {}, c.graph_break !== null ? "graph break (eager)" : "compiled"),
      el("td", {}, c.reason ? "recompile: " + c.reason : "first compile"),
      el("td", {}, c.graph_break !== null ? c.graph_break : `${c.guards.length} guards, ${c.programs.map(p => p.kernels.length + " " + p.name + " kernels").join(", ")}`)));
    const box = el("section", {class: "function", "data-function": i}, el("h2", {}, `${fn.name} (${fn.where}, backend ${fn.backend})`),
      el("table", {class: "compiles"}, el("tr", {}, el("th", {}, "#"), el("th", {}, "outcome"), el("th", {}, "why"), el("th", {}, "details")), ...rows));
    if (fn.compiles.length)
      box.append(tabs(fn.compiles.map(c => "compile " + c.index), name =>
        compileView(fn, fn.compiles[Number(name.split(" ")[1]) - 1])));
    return box;
  }

  document.getElementById("written").textContent = `graphc ${data.graphc}, written ${data.written}`;
  const nav = document.getElementById("functions"), main = document.getElementById("main");
  const views = [];
  data.functions.forEach((fn, i) => {
    const breaks = fn.compiles.filter(c => c.graph_break !== null).length;
    const b = el("button", {onclick: () => select(i)}, `${fn.name}`, el("small", {}, ` ${fn.where}`), el("br"),
      el("small", {}, `${fn.compiles.length} compiles` + (breaks ? `, ${breaks} graph breaks` : "")));
    nav.append(b);
  });
  function select(i) {
    nav.querySelectorAll("button").forEach((b, j) => b.classList.toggle("active", i === j));
    if (!views[i]) { views[i] = functionView(data.functions[i], i); main.append(views[i]); }
    views.forEach((v, j) => { if (v) v.hidden = i !== j; });
  }
  if (data.functions.length) select(0); else main.append(el("p", {}, "No function was compiled with the report on."));
})();
