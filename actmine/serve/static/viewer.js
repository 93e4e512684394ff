// actmine serve: redraw a page's blocks from its JSON twin every few seconds (no full reload).
//
// The page's <main> names its JSON endpoint (data-source) and the polling interval (data-interval);
// each block is an element with data-block="NAME", drawn from the JSON's blocks[NAME] (the block
// kinds of actmine/serve/pages.py: table, tree, image, sections). Every value from the database is
// inserted with textContent, never as markup; links are only followed when they are this server's
// own paths. Sortable tables keep the reader's sort column, filter text and facet choices across
// redraws; the leaderboard's are also kept in the address (#sort=fitness&desc&filter=sin&status=ok),
// so that a view can be bookmarked or shared.
"use strict";

(function () {
  const views = new Map();   // block name (+ section index) -> {sort, descending, filter, facets, data}
  const ADDRESSED = "leaderboard";   // the block whose view is read from and written to the address

  function readAddress(table, view) {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const column = table.columns.indexOf(params.get("sort"));
    if (column >= 0) view.sort = column;
    view.descending = params.has("desc");
    view.filter = params.get("filter") || "";
    (table.facets || []).forEach(function (index) {
      const value = params.get(table.columns[index]);
      if (value !== null) view.facets[index] = value;
    });
  }

  function writeAddress(table, view) {
    const params = new URLSearchParams();
    if (view.sort !== null) params.set("sort", table.columns[view.sort]);
    if (view.sort !== null && view.descending) params.set("desc", "");
    if (view.filter) params.set("filter", view.filter);
    for (const [index, value] of Object.entries(view.facets)) {
      if (value !== "") params.set(table.columns[Number(index)], value);
    }
    const hash = params.toString().replace(/=(&|$)/g, "$1");
    if (hash !== window.location.hash.slice(1)) window.history.replaceState(null, "", "#" + hash);
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function localLink(href, text) {
    // links come from the server's own URL builders; anything else is shown as text
    if (typeof href !== "string" || !href.startsWith("/") || href.startsWith("//")) return null;
    const link = element("a", "", text);
    link.setAttribute("href", href);
    return link;
  }

  function cellNode(cell) {
    const td = element("td", cell.cls || "");
    const link = cell.href ? localLink(cell.href, cell.text) : null;
    if (link) td.append(link); else td.textContent = cell.text;
    return td;
  }

  function viewOf(name) {
    if (!views.has(name)) views.set(name, {sort: null, descending: false, filter: "", facets: {}, data: null});
    return views.get(name);
  }

  function compareCells(a, b) {
    const x = a.sort, y = b.sort;
    if (x !== null && y !== null) return x - y;
    if (x !== null) return -1;               // numbers before "—"
    if (y !== null) return 1;
    return String(a.text).localeCompare(String(b.text), undefined, {numeric: true});
  }

  function visibleRows(table, view) {
    const query = view.filter.trim().toLowerCase();
    let rows = table.rows.filter(function (row) {
      for (const [index, value] of Object.entries(view.facets)) {
        if (value !== "" && row[Number(index)].text !== value) return false;
      }
      return !query || row.some(function (cell) { return String(cell.text).toLowerCase().includes(query); });
    });
    if (view.sort !== null) {
      const column = view.sort, sign = view.descending ? -1 : 1;
      rows = rows.slice().sort(function (a, b) {
        // "no number" stays last whichever way the numbers go
        if ((a[column].sort === null) !== (b[column].sort === null)) return compareCells(a[column], b[column]);
        return sign * compareCells(a[column], b[column]);
      });
    }
    return rows;
  }

  function tableNode(table, view, redraw) {
    if (!table.rows.length) return element("p", "muted", table.empty);
    const node = element("table", "data");
    const head = element("tr");
    table.columns.forEach(function (name, index) {
      const th = element("th", table.sortable ? "sortable" : "", name);
      if (table.sortable) {
        if (view.sort === index) th.textContent = name + (view.descending ? " ▼" : " ▲");
        th.title = "sort by " + name;
        th.addEventListener("click", function () {
          view.descending = view.sort === index ? !view.descending : table.rows.some(function (row) {
            return row[index].sort !== null;
          });
          view.sort = index;
          redraw();
        });
      }
      head.append(th);
    });
    if (table.columns.some(Boolean)) {   // a list of labelled values has no column names
      const thead = element("thead");
      thead.append(head);
      node.append(thead);
    }
    const body = element("tbody");
    const rows = visibleRows(table, view);
    rows.forEach(function (row) {
      const tr = element("tr");
      row.forEach(function (cell) { tr.append(cellNode(cell)); });
      body.append(tr);
    });
    node.append(body);
    return node;
  }

  function controlsNode(table, view, redraw) {
    const controls = element("div", "controls");
    if (table.filterable) {
      const input = element("input", "filter");
      input.type = "search";
      input.placeholder = "filter…";
      input.defaultValue = view.filter;   // the attribute: the address's filter shows in the box
      input.addEventListener("input", function () { view.filter = input.value; redraw(); });
      controls.append(input);
    }
    (table.facets || []).forEach(function (index) {
      const label = element("label", "", table.columns[index] + " ");
      const select = element("select", "facet");
      select.dataset.column = String(index);
      label.append(select);
      controls.append(label);
      select.addEventListener("change", function () { view.facets[index] = select.value; redraw(); });
    });
    return controls;
  }

  function fillFacets(controls, table, view) {
    controls.querySelectorAll("select.facet").forEach(function (select) {
      const index = Number(select.dataset.column);
      const values = Array.from(new Set(table.rows.map(function (row) { return row[index].text; }))).sort();
      const chosen = view.facets[index] || "";
      select.replaceChildren(element("option", "", "all"));
      select.firstChild.value = "";
      values.forEach(function (value) {
        const option = element("option", "", value);
        option.value = value;
        select.append(option);
      });
      select.value = values.includes(chosen) ? chosen : "";
    });
  }

  function drawTable(holder, table, name) {
    const view = viewOf(name);
    if (view.data === null && name === ADDRESSED) readAddress(table, view);
    view.data = table;
    let controls = holder.querySelector(":scope > .controls");
    let area = holder.querySelector(":scope > .table-area");
    const redraw = function () {
      area.replaceChildren(tableNode(view.data, view, redraw));
      if (name === ADDRESSED) writeAddress(view.data, view);
    };
    if (!area) {
      holder.replaceChildren();
      if (table.filterable || (table.facets || []).length) {
        controls = controlsNode(table, view, redraw);
        holder.append(controls);
      }
      area = element("div", "table-area");
      holder.append(area);
    }
    if (controls) fillFacets(controls, table, view);
    redraw();
  }

  function treeNode(node) {
    const item = element("li", node.cls || "");
    item.append(localLink(node.href, node.text) || element("span", "", node.text));
    if (node.more > 0) item.append(" ", element("span", "muted", "(+" + node.more + " more)"));
    if (node.children && node.children.length) {
      const list = element("ul");
      node.children.forEach(function (child) { list.append(treeNode(child)); });
      item.append(list);
    }
    return item;
  }

  function drawImage(holder, block) {
    let img = holder.querySelector("img");
    if (!img) {
      img = element("img");
      holder.replaceChildren(img);
    }
    img.alt = block.alt;
    if (img.getAttribute("src") !== block.src && localLink(block.src, "")) img.setAttribute("src", block.src);
  }

  function drawSections(holder, block, name) {
    const kept = holder.querySelectorAll(":scope > section");
    if (kept.length !== block.sections.length || !holder.dataset.drawn) {
      holder.replaceChildren();
      block.sections.forEach(function () {
        const section = element("section");
        section.append(element("h3"), element("div", "section-table"));
        holder.append(section);
      });
      holder.dataset.drawn = "1";
    }
    holder.querySelectorAll(":scope > section").forEach(function (section, index) {
      const part = block.sections[index];
      section.querySelector("h3").textContent = part.title;
      drawTable(section.querySelector(".section-table"), part.table, name + "/" + index);
    });
  }

  function draw(name, block) {
    const holder = document.querySelector('[data-block="' + CSS.escape(name) + '"]');
    if (!holder || !block) return;
    if (block.type === "table") drawTable(holder, block, name);
    else if (block.type === "image") drawImage(holder, block);
    else if (block.type === "tree") {
      const list = element("ul", "tree");
      list.append(treeNode(block.root));
      holder.replaceChildren(list);
    }
    else if (block.type === "sections") drawSections(holder, block, name);
  }

  function start() {
    const page = document.getElementById("page");
    const live = document.getElementById("live");
    if (!page || !page.dataset.source) return;
    const interval = Math.max(500, Number(page.dataset.interval) || 3000);
    function poll() {
      fetch(page.dataset.source, {cache: "no-store", headers: {"Accept": "application/json"}})
        .then(function (response) {
          if (!response.ok) throw new Error("the server answered " + response.status);
          return response.json();
        })
        .then(function (data) {
          for (const [name, block] of Object.entries(data.blocks || {})) draw(name, block);
          if (live) live.textContent = "live: updated at " + new Date().toLocaleTimeString();
        })
        .catch(function (error) {
          if (live) live.textContent = "not updated: " + error.message + " (retrying)";
        })
        .finally(function () { window.setTimeout(poll, interval); });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
