// The officer's signing page: upload PDFs, click on the page to place the stamp, sign in batch.
// Clicks are mapped to PDF points here: the server sends every page's crop box in points.
"use strict";
(() => {
  const messages = JSON.parse(document.getElementById("messages").textContent);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const input = document.getElementById("files");
  const tbody = document.querySelector("#file-list tbody");
  const identity = document.getElementById("identity");
  const level = document.getElementById("level");
  const pageSelect = document.getElementById("page");
  const image = document.getElementById("page-image");
  const marker = document.getElementById("marker");
  const signButton = document.getElementById("sign-button");
  const progress = document.getElementById("progress");
  const progressBar = document.getElementById("progress-bar");
  const progressText = document.getElementById("progress-text");
  const message = document.getElementById("message");
  const position = document.getElementById("position");

  // Box sizes in points: the person's signature is centred in its box, the seal on its centre.
  const SIZES = { person: [170, 85], seal: [120, 120] };
  const items = [];
  let current = null;
  let placement = null; // { page, cx, cy } in PDF points
  let busy = false;

  const format = (text, values) => text.replace(/\{(\w+)\}/g, (_, key) => values[key]);
  const kind = () => identity.selectedOptions[0].dataset.kind;

  function say(text) {
    message.textContent = text || "";
    message.hidden = !text;
  }

  async function post(url, body, asJson) {
    const headers = { "X-CSRF-Token": csrf, Accept: "application/json" };
    if (asJson) headers["Content-Type"] = "application/json";
    const response = await fetch(url, {
      method: "POST", headers, credentials: "same-origin",
      body: asJson ? JSON.stringify(body) : body,
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || data.title || response.statusText);
    return data;
  }

  function setStatus(item, status, detail) {
    item.status = status;
    item.statusCell.textContent = messages[status] + (detail ? `: ${detail}` : "");
    item.statusCell.className = `status-${status}`;
  }

  function addRow(name) {
    const row = tbody.insertRow();
    const item = { row, name, upload: null, status: "uploading" };
    row.insertCell().textContent = name;
    item.statusCell = row.insertCell();
    item.actions = row.insertCell();
    const show = document.createElement("button");
    show.type = "button";
    show.className = "link-dark";
    show.textContent = messages.preview;
    show.addEventListener("click", () => item.upload && preview(item));
    item.actions.append(show);
    setStatus(item, "uploading");
    items.push(item);
    return item;
  }

  function preview(item) {
    current = item;
    items.forEach((i) => i.row.classList.toggle("selected", i === item));
    const chosen = placement ? placement.page : Number(pageSelect.value || 1);
    pageSelect.replaceChildren(
      ...item.upload.pages.map((_, n) => new Option(String(n + 1), String(n + 1))),
    );
    pageSelect.value = String(Math.min(chosen, item.upload.pages.length));
    showPage();
  }

  function showPage() {
    if (!current) return;
    image.hidden = false;
    image.src = `${current.upload.page_url}${pageSelect.value}.png?v=${current.upload.id}`;
    drawMarker();
  }

  function pageBox() {
    return current.upload.pages[Number(pageSelect.value) - 1].box;
  }

  function boxFor(pageBoxPoints) {
    const [x1, y1, x2, y2] = pageBoxPoints;
    const [w, h] = SIZES[kind()] || SIZES.person;
    const clamp = (v, low, high) => Math.max(low, Math.min(high, v));
    const bx1 = clamp(placement.cx - w / 2, x1, x2 - w);
    const by1 = clamp(placement.cy - h / 2, y1, y2 - h);
    return [bx1, by1, bx1 + w, by1 + h].map((v) => Math.round(v * 100) / 100);
  }

  function drawMarker() {
    if (!placement || !current || placement.page !== Number(pageSelect.value) || !image.complete
        || !image.clientWidth) {
      marker.hidden = true;
      position.textContent = "";
      return;
    }
    const [x1, y1, x2, y2] = pageBox();
    const [bx1, by1, bx2, by2] = boxFor([x1, y1, x2, y2]);
    const sx = image.clientWidth / (x2 - x1);
    const sy = image.clientHeight / (y2 - y1);
    marker.style.left = `${(bx1 - x1) * sx}px`;
    marker.style.top = `${(y2 - by2) * sy}px`;
    marker.style.width = `${(bx2 - bx1) * sx}px`;
    marker.style.height = `${(by2 - by1) * sy}px`;
    marker.className = `marker ${kind()}`;
    marker.hidden = false;
    position.textContent = `${messages.position}: ${[bx1, by1, bx2, by2].join(", ")}`;
  }

  function update() {
    signButton.disabled = busy || !items.some((i) => i.upload);
  }

  input.addEventListener("change", async () => {
    say("");
    const chosen = Array.from(input.files);
    input.value = "";
    for (const file of chosen) {
      const item = addRow(file.name);
      const form = new FormData();
      form.append("file", file);
      try {
        item.upload = await post("/sign/uploads", form, false);
        setStatus(item, "uploaded");
        if (!current) preview(item);
      } catch (error) {
        setStatus(item, "failed", error.message);
      }
      update();
    }
  });

  image.addEventListener("load", drawMarker);
  window.addEventListener("resize", drawMarker);
  pageSelect.addEventListener("change", showPage);
  identity.addEventListener("change", () => {
    placement = null; // a seal without a click is placed over the person's signature
    drawMarker();
  });

  image.addEventListener("click", (event) => {
    const rect = image.getBoundingClientRect();
    const fx = (event.clientX - rect.left) / rect.width;
    const fy = (event.clientY - rect.top) / rect.height;
    const [x1, y1, x2, y2] = pageBox();
    placement = {
      page: Number(pageSelect.value),
      cx: x1 + fx * (x2 - x1),
      cy: y2 - fy * (y2 - y1),
    };
    say("");
    drawMarker();
  });

  signButton.addEventListener("click", async () => {
    const todo = items.filter((i) => i.upload);
    if (!todo.length) return say(messages.no_files);
    if (!placement && kind() !== "seal") return say(messages.place_first);
    say("");
    busy = true;
    update();
    progress.hidden = false;
    progressBar.max = todo.length;
    let done = 0;
    const tick = () => {
      progressBar.value = done;
      progressText.textContent = format(messages.progress, { done, total: todo.length });
    };
    tick();
    for (const item of todo) {
      setStatus(item, "signing");
      const page = placement ? Math.min(placement.page, item.upload.pages.length) : 1;
      const body = {
        key: identity.value,
        level: level.value,
        page,
        box: placement ? boxFor(item.upload.pages[page - 1].box) : null,
      };
      try {
        const signed = await post(`/sign/uploads/${item.upload.id}/sign`, body, true);
        item.upload = signed;
        setStatus(item, "signed");
        item.actions.querySelector("a.download")?.remove();
        const link = document.createElement("a");
        link.href = signed.download;
        link.download = signed.name;
        link.className = "download";
        link.textContent = ` ${messages.download}`;
        item.actions.append(link);
        if (item === current) preview(item);
      } catch (error) {
        setStatus(item, "failed", error.message);
      }
      done += 1;
      tick();
    }
    busy = false;
    // Signed: the marker would hide the stamp. A seal signed next without a click goes over
    // the left third of the person's signature.
    placement = null;
    drawMarker();
    update();
  });
})();
