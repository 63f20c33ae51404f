// The regulator's dashboard: sign in and sign acts in the page with WebCrypto Ed25519.
//
// The key file is what `market client keygen` writes (PEM PKCS#8; DER PKCS#8 works too).
// It is read here and never sent anywhere: the page signs the server's one-time challenge
// with it, then keeps the key, imported as NOT extractable, in this origin's IndexedDB
// until sign-out, to sign acts (freeze, approvals, alert closures) drafted by the market.
"use strict";

const DB = "market-oversight", STORE = "keys", ENTRY = "signing";

function idb(mode, work) {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open(DB, 1);
    open.onupgradeneeded = () => open.result.createObjectStore(STORE);
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const tx = open.result.transaction(STORE, mode);
      const request = work(tx.objectStore(STORE));
      tx.oncomplete = () => { open.result.close(); resolve(request && request.result); };
      tx.onerror = () => { open.result.close(); reject(tx.error); };
    };
  });
}

const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
const fromUrl = (text) => text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - text.length % 4) % 4);

function pkcs8(buffer) {
  const text = new TextDecoder().decode(buffer);
  const pem = text.match(/-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/);
  if (pem) return unb64(pem[1].replace(/\s+/g, ""));
  if (text.includes("-----BEGIN")) throw new Error("not an unencrypted PKCS#8 private key (BEGIN PRIVATE KEY)");
  return new Uint8Array(buffer);  // DER
}

async function openKeyFile(file) {
  const der = pkcs8(await file.arrayBuffer());
  const extractable = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, true, ["sign"]);
  const jwk = await crypto.subtle.exportKey("jwk", extractable);
  const kept = await crypto.subtle.importKey("pkcs8", der, { name: "Ed25519" }, false, ["sign"]);
  return { publicKey: b64(unb64(fromUrl(jwk.x))), key: kept };
}

const sign = async (key, bytes) => b64(await crypto.subtle.sign({ name: "Ed25519" }, key, bytes));

function fail(form, message) {
  let shown = form.querySelector(".act-error");
  if (!shown) {
    shown = document.createElement("p");
    shown.className = "error act-error";
    shown.setAttribute("role", "alert");
    form.append(shown);
  }
  shown.hidden = false;
  shown.textContent = message;
}

function signIn(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("signin-error");
    try {
      const file = document.getElementById("key-file").files[0];
      if (!file) throw new Error("open your key file first");
      const { publicKey, key } = await openKeyFile(file);
      form.elements.public_key.value = publicKey;
      form.elements.signature.value = await sign(key, unb64(form.dataset.challenge));
      await idb("readwrite", (store) => store.put(key, ENTRY));
      form.submit();  // the file input has no name: the key is not part of the form
    } catch (e) {
      error.hidden = false;
      error.textContent = "无法使用此密钥 Cannot use this key: " + (e && e.message ? e.message : e);
    }
  });
}

function fieldsOf(form, submitter) {
  const data = new FormData(form, submitter);
  const body = { kind: form.dataset.act };
  for (const [name, value] of data.entries()) {
    if (!["csrf", "signing_bytes", "key_id", "signature"].includes(name)) body[name] = String(value).trim();
  }
  if (form.dataset.order) body.order = form.dataset.order;
  if (form.dataset.alert) body.alert = form.dataset.alert;
  return body;
}

function act(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const key = await idb("readonly", (store) => store.get(ENTRY));
      if (!key) throw new Error("the key is not open in this browser: sign out and sign in with your key file");
      const response = await fetch("/oversight/acts/draft", {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": form.elements.csrf.value },
        body: JSON.stringify(fieldsOf(form, event.submitter)),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.detail || response.status);
      form.elements.signing_bytes.value = answer.signing_bytes;
      form.elements.key_id.value = document.body.dataset.keyId;
      form.elements.signature.value = await sign(key, unb64(answer.signing_bytes));
      form.submit();
    } catch (e) {
      fail(form, "未能签名 Not signed: " + (e && e.message ? e.message : e));
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const signin = document.getElementById("signin-form");
  if (signin) signIn(signin);
  document.querySelectorAll("form[data-act]").forEach(act);
  const signout = document.getElementById("signout-form");
  if (signout) {
    signout.addEventListener("submit", async (event) => {
      event.preventDefault();
      try { await idb("readwrite", (store) => store.delete(ENTRY)); } finally { signout.submit(); }
    });
  }
});
