// The risk desk page: reads /v1/dashboard, then refreshes on every event of /v1/events/stream.
(function () {
  "use strict";
  // The key is typed once into the sign-in form and traded for a session cookie (POST /v1/session):
  // it never goes into a URL. Reads and the event stream then carry the cookie.
  const num = (x, d = 2) => (x === null || x === undefined) ? "-" : Number(x).toLocaleString("en-US",
    { minimumFractionDigits: d, maximumFractionDigits: d });
  const utc = (seconds) => new Date(seconds * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  let insuranceChart = null, usageChart = null, pending = null, source = null;

  // "BTC 57,575.76 below / 64,100.00 above": where the index would bring the account to maintenance
  function liquidationText(prices) {
    return (prices || []).map((p) => {
      if (p.liquidatable_now) return `${p.underlying}: now`;
      const sides = [p.below && `${num(p.below)} below`, p.above && `${num(p.above)} above`].filter(Boolean);
      return `${p.underlying} ${sides.length ? sides.join(" / ") : "none within -99% / +900%"}`;
    }).join("; ");
  }

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

  function chart(existing, el, data, opts) {
    if (existing) { existing.setData(data); return existing; }
    return new uPlot({ height: 180, legend: { show: false }, ...opts }, data, el);
  }

  function render(d) {
    const cash = d.settlement_asset;
    document.getElementById("engine-time").textContent = d.time ? d.time.replace("T", " ").replace("Z", " UTC") : "clock not set";
    document.getElementById("profile").textContent = `profile ${d.profile}`;
    rows("oracle", d.oracle, (o) => [[o.underlying], [num(o.index), "", `oracle-${o.underlying}-index`],
      [o.status, o.status, `oracle-${o.underlying}-status`], [o.reason]]);
    rows("nearest", d.nearest_liquidation, (a) => [[a.account], [a.margin_ratio === null ? "under water" : (100 * a.margin_ratio).toFixed(1) + "%",
      (a.margin_ratio === null || a.margin_ratio >= 1) ? "risk" : ""], [num(a.equity)], [num(a.maintenance_margin)],
      [liquidationText(a.liquidation_prices), "", `liq-${a.account}`]]);
    rows("exposure", Object.entries(d.exposure), ([u, e]) => [[u],
      [`${num(e.open_interest, 4)} ${u} (${num(e.open_interest_usd, 0)} USD)`], [num(e.delta, 4)], [num(e.vega)], [num(e.theta)]]);
    document.getElementById("insurance").textContent = `${num(d.insurance_fund)} ${cash}`;
    // the fund over engine time: from the first engine time, never from 1970
    const hist = d.insurance_history.length ? d.insurance_history
      : (d.time_s === null ? [] : [[d.time_s, Number(d.insurance_fund)]]);
    const start = document.getElementById("insurance-start");
    start.textContent = hist.length ? utc(hist[0][0]) : "(clock not set)";
    const el = document.getElementById("insurance-chart");
    el.dataset.start = hist.length ? String(hist[0][0]) : "";
    const width = el.clientWidth || 400;
    insuranceChart = chart(insuranceChart, el, [hist.map((p) => p[0]), hist.map((p) => p[1])], {
      width, scales: { x: { time: true } }, tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
      series: [{}, { label: `insurance fund (${cash})`, stroke: "#2f5bb7", paths: uPlot.paths.stepped({ align: 1 }) }],
      axes: [{}, { size: 90, values: (u, ticks) => ticks.map((t) => num(t, 0)) }],
    });
    const usage = d.margin_usage;
    usageChart = chart(usageChart, document.getElementById("usage-chart"),
      [usage.counts.map((_, i) => usage.bucket_edges[i]), usage.counts], {
        width, scales: { x: { time: false } },
        series: [{}, { label: "accounts", stroke: "#177245", fill: "rgba(23,114,69,.15)", paths: uPlot.paths.bars({ size: [0.9] }) }],
        axes: [{ values: (u, ticks) => ticks.map((t) => `${Math.round(t * 100)}%`) }, { size: 50 }],
      });
    const list = document.getElementById("events");
    list.replaceChildren(...d.recent.slice().reverse().map((e) => {
      const li = document.createElement("li");
      li.className = `event ${e.type}`;
      const when = document.createElement("time");
      when.textContent = e.engine_time ? e.engine_time.slice(11, 19) + " " : "";
      li.append(when, e.text || e.type);
      return li;
    }));
    document.getElementById("status").textContent = "live";
    document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
  }

  async function refresh() {
    pending = null;
    const response = await fetch("/v1/dashboard", { credentials: "same-origin" });
    if (response.status === 401) { showSignIn(null); return false; }
    if (response.status === 403) { showSignIn("This key is not an admin key: the desk needs one (create-key admin)."); return false; }
    if (!response.ok) { document.getElementById("status").textContent = `the service answered ${response.status}; retrying`; return false; }
    document.getElementById("signin").hidden = true;
    document.getElementById("desk").hidden = false;
    render(await response.json());
    return true;
  }

  function showSignIn(refusal) {
    if (source) { source.close(); source = null; }
    document.getElementById("desk").hidden = true;
    const box = document.getElementById("signin");
    box.hidden = false;
    box.classList.toggle("refused", Boolean(refusal));
    if (refusal) {
      document.getElementById("signin-title").textContent = "That key was refused";
      document.getElementById("signin-message").textContent = refusal;
    }
    document.getElementById("status").textContent = refusal ? "key refused" : "sign in with an admin key";
  }

  function listen() {
    source = new EventSource("/v1/events/stream");
    const schedule = () => { if (!pending) pending = setTimeout(refresh, 100); };
    for (const type of ["market_set", "oracle_updated", "transfer", "position_changed", "liquidation_fill",
                        "liquidation_started", "auction_ended", "bankruptcy", "account_opened", "time_advanced"]) {
      source.addEventListener(type, schedule);
    }
  }

  document.getElementById("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const field = document.getElementById("key");
    const response = await fetch("/v1/session", { method: "POST", headers: { "X-API-Key": field.value } });
    field.value = "";
    if (!response.ok) {
      showSignIn(response.status === 401
        ? "The service does not know this key, or it was revoked (401). Check it, or create a new one with create-key admin."
        : `The service refused the key (${response.status}).`);
      return;
    }
    if (await refresh()) listen();
  });

  refresh().then((ok) => { if (ok) listen(); });
})();
