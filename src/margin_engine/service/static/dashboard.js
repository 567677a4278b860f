// The risk desk page: reads /v1/dashboard, then refreshes on every event of /v1/events/stream.
(function () {
  "use strict";
  // The key is typed once into the login form and traded for a session cookie (POST /v1/session):
  // it never goes into a URL. Reads and the event stream then carry the cookie.
  const fmt = (x, d = 2) => (x === null || x === undefined) ? "inf" : Number(x).toLocaleString(undefined, { maximumFractionDigits: d });
  let insuranceChart = null, usageChart = null, pending = null;

  function rows(id, items, cells) {
    const body = document.querySelector(`#${id} tbody`);
    body.replaceChildren(...items.map((item) => {
      const tr = document.createElement("tr");
      for (const [text, cls, cellId] of cells(item)) {
        const td = document.createElement("td");
        td.textContent = text;
        if (cls) td.className = cls;
        if (cellId) td.id = cellId;
        tr.appendChild(td);
      }
      return tr;
    }));
  }

  function chart(existing, el, data, series, width, time) {
    if (existing) { existing.setData(data); return existing; }
    return new uPlot({ width, height: 180, series, scales: { x: { time } }, axes: [{}, { size: 80 }], legend: { show: false } },
      data, el);
  }

  function render(d) {
    rows("oracle", d.oracle, (o) => [[o.underlying], [fmt(o.index), "", `oracle-${o.underlying}-index`],
      [o.status, o.status, `oracle-${o.underlying}-status`], [o.reason]]);
    rows("nearest", d.nearest_liquidation, (a) => [[a.account], [a.margin_ratio === null ? "inf" : (100 * a.margin_ratio).toFixed(1) + "%",
      (a.margin_ratio === null || a.margin_ratio >= 1) ? "risk" : ""], [fmt(a.equity)], [fmt(a.maintenance_margin)]]);
    rows("exposure", Object.entries(d.exposure), ([u, e]) => [[u], [fmt(e.open_interest, 4)], [fmt(e.delta, 4)],
      [fmt(e.vega)], [fmt(e.theta)]]);
    document.getElementById("insurance").textContent = fmt(d.insurance_fund) + " USDC";
    const hist = d.insurance_history.length ? d.insurance_history : [[d.time || 0, Number(d.insurance_fund)]];
    const width = document.getElementById("insurance-chart").clientWidth || 400;
    insuranceChart = chart(insuranceChart, document.getElementById("insurance-chart"),
      [hist.map((p) => p[0]), hist.map((p) => p[1])], [{}, { label: "insurance fund", stroke: "#2f5bb7" }], width, true);
    const usage = d.margin_usage;
    usageChart = chart(usageChart, document.getElementById("usage-chart"),
      [usage.counts.map((_, i) => usage.bucket_edges[i]), usage.counts],
      [{}, { label: "accounts", stroke: "#177245", fill: "rgba(23,114,69,.15)", paths: uPlot.paths.bars({ size: [0.9] }) }], width, false);
    const list = document.getElementById("events");
    list.replaceChildren(...d.recent.slice().reverse().map((e) => {
      const li = document.createElement("li");
      li.textContent = `${e.type} ` + Object.entries(e).filter(([k]) => k !== "type").map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join(" ");
      return li;
    }));
    document.getElementById("status").textContent = "live";
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  const login = document.getElementById("login");
  let source = null;

  async function refresh() {
    pending = null;
    const response = await fetch("/v1/dashboard", { credentials: "same-origin" });
    if (response.status === 401) { showLogin("sign in with an admin key"); return false; }
    if (!response.ok) { document.getElementById("status").textContent = `error ${response.status}`; return false; }
    render(await response.json());
    return true;
  }

  function showLogin(message) {
    if (source) { source.close(); source = null; }
    login.hidden = false;
    document.getElementById("status").textContent = message;
  }

  function listen() {
    source = new EventSource("/v1/events/stream");
    const schedule = () => { if (!pending) pending = setTimeout(refresh, 100); };
    for (const type of ["market_set", "oracle_updated", "transfer", "position_changed", "liquidation_fill",
                        "liquidation_started", "auction_ended", "bankruptcy", "account_opened"]) {
      source.addEventListener(type, schedule);
    }
  }

  login.addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = document.getElementById("key");
    const response = await fetch("/v1/session", { method: "POST", headers: { "X-API-Key": field.value } });
    field.value = "";
    if (!response.ok) { showLogin(`sign-in refused (${response.status})`); return; }
    login.hidden = true;
    if (await refresh()) listen();
  });

  refresh().then((ok) => { if (ok) listen(); });
})();
