"""Every kind of problem the market answers with, and what it means for the reader.

A problem's ``type`` is ``<base URL>/problems/<kind>`` (``market.core.errors``); the page
there (``market.web.problems``) is made from the entry here. The list is complete by
test: ``tests/test_problems.py`` reads the source for every kind the code raises and
fails on one missing here, so a new kind comes with its explanation.

Each entry: the HTTP status it comes with, a title, what happened, what to do, and the
section of the written contract that says more (``docs/API.md`` or ``docs/LEDGER.md``,
served at ``/docs/api`` and ``/docs/ledger``).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class ProblemKind:
    kind: str
    status: int
    title: str
    explanation: str
    what_to_do: str
    doc: str  # "api#section" or "ledger#section": a page under /docs and its anchor


def _p(kind: str, status: int, title: str, explanation: str, what_to_do: str, doc: str = "api#conventions") -> ProblemKind:
    return ProblemKind(kind, status, title, explanation, what_to_do, doc)


_SIGNED = "api#signed-documents"
_ORDERS = "api#orders"
_MONEY = "api#payments-statements-and-payouts"
_REGISTRY = "api#registry"
_LISTINGS = "api#listings"
_OVERSIGHT = "api#oversight"
_REGULATORS = "api#regulators"
_USAGE = "api#usage-controlled-delivery"

_KINDS = [
    # -- the protocol: requests the server cannot take as they are ---------------------
    _p("bad-request", 400, "Bad request", "The request could not be understood as sent.",
       "Check the method, path, headers and body against the contract and send it again."),
    _p("validation-error", 422, "Invalid request",
       "A field of the body, the query or the path is missing, of the wrong type or out of range. The "
       "problem's errors list names each field and what is wrong with it.",
       "Correct the fields named in errors and send the request again."),
    _p("unprocessable", 422, "Unprocessable request", "The request is well formed but a rule of the market refuses it.",
       "Read the detail: it names the rule. Change the request to satisfy it."),
    _p("http-error", 400, "Error", "The server refused the request at the HTTP level.",
       "Read the detail and the status code; check the request against the contract."),
    _p("not-found", 404, "Not found",
       "Nothing is at this address, or the object exists but the caller may not see it (the market does "
       "not tell the two apart, so that ids reveal nothing).",
       "Check the id and the path; authenticate as an account that may see the object."),
    _p("method-not-allowed", 405, "Method not allowed", "The path exists but does not take this method.",
       "Use one of the methods in the response's Allow header."),
    _p("too-large", 413, "Too large",
       "The request body is larger than the market accepts (MARKET_MAX_BODY_BYTES for JSON, "
       "MARKET_MAX_UPLOAD_BYTES for content).",
       "Send a smaller body; content larger than the upload limit cannot be registered here.", _REGISTRY),
    _p("unsupported-media-type", 415, "Unsupported media type", "The body is of a media type this route does not read.",
       "Send the body as the route expects (JSON unless the contract says otherwise) with a matching "
       "Content-Type."),
    _p("range-not-satisfiable", 416, "Range not satisfiable",
       "The Range asked for starts beyond the end of the content. Content-Range: bytes */size gives its size.",
       "Ask for a range within the size given, or for the whole content without Range.", _ORDERS),
    _p("too-many-requests", 429, "Too many requests",
       "This token (or address, when anonymous) sent more requests than the market's rate limits allow.",
       "Wait the number of seconds in Retry-After, then send the request again; spread requests out."),
    _p("internal-error", 500, "Internal error",
       "The server failed while handling the request. Nothing the request asked for is half done: its "
       "transaction was rolled back. The failure is logged with the request id.",
       "Try again later; if it persists, tell the operator the X-Request-ID of the response."),
    _p("not-ready", 503, "Not ready",
       "The process runs but cannot serve yet: its database is unreachable or not migrated to the newest schema.",
       "Operators: check the database and run 'market db upgrade'. Clients: try again shortly."),
    _p("content-unavailable", 503, "Content unavailable",
       "The content of the asset could not be read from the market's blob store: the blob is missing or the "
       "object store does not answer. Nothing was sent.",
       "Try again after the seconds in Retry-After; if it persists, tell the operator the X-Request-ID "
       "(operators: 'market storage check')."),
    _p("content-corrupted", 500, "Content corrupted",
       "The stored content failed its check against the commitment registered for it, so it is not served.",
       "Tell the operator the X-Request-ID; operators: 'market storage check', then restore the blob."),
    _p("bad-cursor", 422, "Bad cursor", "The cursor is not one this list gave out (or was altered).",
       "Start the list again without cursor, and pass next_cursor exactly as received."),
    _p("bad-limit", 422, "Bad limit", "limit is outside 1 to 500.", "Ask for 1 to 500 items a page."),
    _p("bad-idempotency-key", 422, "Bad Idempotency-Key",
       "The Idempotency-Key header is empty, too long, or has characters other than printable ASCII.",
       "Send a fresh random UUID as the key."),
    _p("idempotency-key-reused", 409, "Idempotency key reused",
       "This Idempotency-Key was used before with a different request body. A replay must repeat the "
       "first request exactly.",
       "Use a new key for a new request; to replay, send the same body as the first time."),
    _p("concurrent-update", 409, "Concurrent update",
       "The object changed between the moment it was read and the moment this request would have changed "
       "it; the other change won.",
       "Read the object again and decide whether the request still makes sense; then retry."),
    _p("conflict", 409, "Conflict", "The request conflicts with the current state of the object.",
       "Read the object again and the detail, then retry if it still applies."),
    _p("invalid-transition", 409, "Transition not allowed",
       "The object's current status does not allow this action (current_status says which status it is in).",
       "Read the object; the contract lists which actions each status allows."),
    _p("no-change", 409, "Nothing to change", "The object is already in the state asked for.",
       "Nothing to do; read the object to see its state."),
    # -- authentication and roles -------------------------------------------------------
    _p("not-authenticated", 401, "Not authenticated", "The route needs a valid bearer token.",
       "Send Authorization: Bearer <token>."),
    _p("missing-token", 401, "Token missing", "The route needs a bearer token and none was sent.",
       "Send Authorization: Bearer <token> with a token of an account allowed here."),
    _p("bad-token", 401, "Bad token",
       "The Authorization header is not 'Bearer <token>', or the token is unknown or revoked.",
       "Use a live token; an account makes new ones with POST /v1/accounts/me/tokens.", "api#accounts-and-keys"),
    _p("invalid-transfer-token", 401, "Invalid transfer token",
       "A transfer's data endpoint was asked without the current token of that transfer while it is started: "
       "no token, another token, or a token that ended when the transfer was suspended, completed or terminated.",
       "Use the token of the latest TransferStartMessage of this transfer; a suspended transfer gets a new one when "
       "it starts again.", "api#dataspace-protocol"),
    _p("forbidden", 403, "Forbidden", "The caller is authenticated but may not do this.",
       "Use an account with the right role, or ask the object's holder or an operator."),
    _p("wrong-role", 403, "Wrong role", "The caller's account lacks the role this needs.",
       "Use an account with the role named in the detail.", "api#accounts-and-keys"),
    _p("account-not-verified", 403, "Account not verified",
       "This needs an account whose identity (KYC) an operator has verified; the caller's is pending or rejected.",
       "Wait for the operator's verification of the account, or ask an operator to review it.",
       "api#accounts-and-keys"),
    _p("account-inactive", 403, "Account inactive",
       "The account is suspended by a regulator or rejected at verification; it may read but not act.",
       "Contact the operator of the market; a regulator may reinstate a suspended account.",
       "api#accounts-and-keys"),
    _p("account-suspended", 403, "Account suspended",
       "The account is suspended by a regulator; content it bought is not delivered meanwhile.",
       "Contact the operator of the market; delivery resumes if the account is reinstated.", _ORDERS),
    _p("duplicate-account", 409, "Account exists", "An account with this unified social credit code exists already.",
       "Sign in with that account's token; one organisation holds one account.", "api#accounts-and-keys"),
    _p("duplicate-key", 409, "Key already registered", "This public key is already registered to an account.",
       "Generate a new key pair for this account.", "api#accounts-and-keys"),
    _p("too-many-tokens", 409, "Too many tokens",
       "The account holds as many live API tokens as the market allows (MARKET_MAX_TOKENS_PER_ACCOUNT).",
       "Revoke a token you no longer use (DELETE /v1/accounts/me/tokens/{id}), then make a new one.",
       "api#accounts-and-keys"),
    _p("regulator-needs-enrollment", 403, "Regulator needs enrollment",
       "Regulator accounts are not made through the API: only from an enrollment signed by the regulator authority.",
       "The operator runs 'market admin create-regulator --enrollment FILE' with the enrollment the "
       "authority signed.", _REGULATORS),
    _p("wrong-authority", 409, "Wrong authority",
       "The enrollment is signed by another regulator authority than the one this market trusts "
       "(MARKET_REGULATOR_AUTHORITY).",
       "Have the enrollment signed by the configured authority.", _REGULATORS),
    # -- signed documents ---------------------------------------------------------------
    _p("malformed-document", 422, "Malformed document",
       "signing_bytes is not base64 of a JSON object, or is too long.",
       "Send signing_bytes exactly as the market gave them (base64), without changes.", _SIGNED),
    _p("non-canonical-document", 422, "Document not canonical",
       "signing_bytes are not the RFC 8785 canonical JSON the market gave out.",
       "Sign and send the bytes as received; do not re-serialise the document.", _SIGNED),
    _p("altered-document", 422, "Altered document",
       "The signed document is not the one the market drafted for this request: a member differs, is "
       "missing or was added, or it names another object or party.",
       "Fetch a new document for this exact request, sign its bytes unchanged and send them.", _SIGNED),
    _p("stale-document", 422, "Stale document",
       "The document was issued more than 24 hours ago (a transfer: proposed more than 7 days ago).",
       "Fetch a new document and sign it.", _SIGNED),
    _p("claim-not-current", 422, "Claim not current",
       "The claim does not match the asset's current content or source: it changed since the claim was fetched.",
       "Fetch the claim again (GET /v1/assets/{id}/claim), sign it and submit.", _REGISTRY),
    _p("bad-signature", 422, "Bad signature",
       "The signature is not valid base64 of 64 bytes, or does not verify over the bytes under the key named. "
       "On the Stripe webhook (status 400): the Stripe-Signature header does not verify.",
       "Sign exactly the signing_bytes received, with the private key of the key_id you send.", _SIGNED),
    _p("unknown-key", 422, "Unknown key", "key_id is not a key of the signing account.",
       "Register the public key first (POST /v1/accounts/me/keys) and send its id.", "api#accounts-and-keys"),
    _p("revoked-key", 422, "Revoked key", "The key was revoked; it still verifies old signatures but signs nothing new.",
       "Sign with a live key of the account.", "api#accounts-and-keys"),
    # -- registry -----------------------------------------------------------------------
    _p("not-owner", 403, "Not the holder", "Only the holder of the asset or listing may do this.",
       "Use the holder's account.", _REGISTRY),
    _p("empty-content", 422, "Empty content", "The uploaded content is empty; a data asset holds at least one byte.",
       "Upload the asset's data.", _REGISTRY),
    _p("no-content", 422, "No content to claim", "The asset has no uploaded content (or no new content) to claim.",
       "Upload the content (PUT /v1/assets/{id}/content) before claiming it.", _REGISTRY),
    _p("bad-rights", 422, "Bad rights", "rights must be some of holding, use, operation.",
       "Ask for the claim with rights from that list, comma-separated.", _REGISTRY),
    _p("core-data-refused", 422, "Core data refused",
       "Core data (核心数据) cannot be registered for trading; the attempt is kept for the regulator.",
       "Do not offer core data on the market.", _REGISTRY),
    _p("legal-basis-required", 422, "Legal basis required",
       "Identifiable personal information needs a declared legal basis before its claim.",
       "Set legal_basis on the asset (PATCH while draft), then submit the claim.", _REGISTRY),
    _p("unresolved-conflict", 409, "Unresolved conflict",
       "Another party's pending or registered asset has the same content commitment (conflicts_with names it).",
       "Operators: resolve the conflict, or approve with override_conflict and a reason (kept on the ledger).",
       _REGISTRY),
    _p("staff-cannot-object", 403, "Staff cannot object",
       "Regulators and operators act on registrations through their own acts and reviews, not objections.",
       "Use the review or the regulator's actions instead.", _REGISTRY),
    _p("own-asset", 403, "Own asset", "A holder cannot object to its own registration.",
       "Withdraw or change the asset instead.", _REGISTRY),
    _p("notice-ended", 409, "Notice period ended", "The public notice period of the asset is over; objections are closed.",
       "Contact the operator, or a regulator, about a registered asset.", _REGISTRY),
    _p("duplicate-objection", 409, "Objection open already", "This account has an open objection to this asset.",
       "Wait for the operator's resolution of that objection.", _REGISTRY),
    _p("bad-transfer-target", 422, "Bad transfer target",
       "A holding transfer goes to another verified, active provider account, never to the holder itself.",
       "Name a verified provider account in to.", _REGISTRY),
    _p("not-recipient", 403, "Not the recipient", "Only the account a transfer names accepts it.",
       "Accept with the receiving provider's account.", _REGISTRY),
    _p("not-proposer", 403, "Not the proposer", "Only the holder that proposed a transfer withdraws it.",
       "Withdraw with the proposing holder's account.", _REGISTRY),
    _p("unknown-category", 422, "Unknown category",
       "category is not one of the market's closed list of categories.",
       "Use an id from GET /v1/categories (other is there for what fits nowhere else).", _REGISTRY),
    _p("bad-region-code", 422, "Bad region code", "A 行政区划 code (GB/T 2260) is six digits.",
       "Give the six-digit code, e.g. 440300.", _REGISTRY),
    _p("asset-frozen", 403, "Asset frozen", "A regulator has frozen the asset; changes, transfers and listings wait.",
       "Wait until the regulator unfreezes it; the holder was told the reason.", _OVERSIGHT),
    # -- listings and search ------------------------------------------------------------
    _p("not-listable", 409, "Not listable", "Only a registered, unfrozen asset can be listed.",
       "List the asset once it is registered and not frozen.", _LISTINGS),
    _p("missing-operation-right", 422, "Operation right missing",
       "The asset's registration does not include the operation right (经营权), which listing needs.",
       "Register a change of the asset that claims the operation right, then list it.", _LISTINGS),
    _p("already-listed", 409, "Already listed", "The asset has a live listing already.",
       "Change that listing (PATCH /v1/listings/{id}) instead of making another.", _LISTINGS),
    _p("bad-private-plan", 422, "Bad private plan", "A private plan is for other accounts, not its holder.",
       "Name buyer accounts in private_to.", _LISTINGS),
    _p("unknown-buyer", 422, "Unknown buyer", "private_to names accounts that are not buyers.",
       "Name accounts with the buyer role.", _LISTINGS),
    _p("unknown-plan", 422, "Unknown plan", "The plan id is not one of this listing's plans.",
       "Read the listing for its plan ids; leave id out to add a plan.", _LISTINGS),
    _p("bad-update", 422, "Bad update", "Delisting is final and is sent alone, without other changes.",
       "Send {\"status\": \"delisted\"} by itself.", _LISTINGS),
    _p("listing-frozen", 403, "Listing frozen", "A regulator has frozen the listing; it cannot be changed or resumed.",
       "Wait until the regulator unfreezes it; the holder was told the reason.", _OVERSIGHT),
    _p("bad-query", 422, "Bad search text", "q is too long, has no words to search for, or too many.",
       "Search with a few words (letters, digits or Chinese characters).", "api#search"),
    _p("bad-sort", 422, "Bad sort", "sort is not one of relevance, newest, price_asc, price_desc (relevance needs q).",
       "Use one of those orders.", "api#search"),
    _p("bad-price", 422, "Bad price filter",
       "min_price or max_price is out of range (minor units, 0 to 10^15), or min_price is above max_price.",
       "Give prices in minor units (fen), min_price not above max_price.", "api#search"),
    # -- orders ---------------------------------------------------------------------------
    _p("self-dealing", 422, "Self-dealing", "A provider cannot buy its own listing; the attempt is kept for the regulator.",
       "Buy from another provider's listing.", _ORDERS),
    _p("purpose-not-licensed", 422, "Purpose not licensed",
       "The purpose is not among the licence's purposes (无场景不交易: no trade without a use).",
       "Order with one of the purposes the listing's licence names.", _ORDERS),
    _p("export-not-allowed", 403, "Export not allowed",
       "The data may not go to a buyer outside the market's jurisdiction (the asset is not cleared for "
       "export, or the licence is domestic). The attempt is kept for the regulator.",
       "Only buyers in the market's jurisdiction may order this listing.", _ORDERS),
    _p("not-orderable", 409, "Not orderable",
       "The listing cannot be ordered (or the order approved) now: paused, delisted, frozen, or its asset is "
       "not registered.",
       "Read the listing (orderable says whether it can be ordered) and try when it can.", _ORDERS),
    _p("terms-changed", 409, "Terms changed", "The listing's terms changed since the order document was issued.",
       "Read the new terms, fetch a new order document and sign it.", _ORDERS),
    _p("bad-payment-method", 422, "Bad payment method",
       "A free plan is ordered with payment_method free, and only a free plan is.",
       "Choose the payment method that fits the plan.", _ORDERS),
    _p("payment-method-unavailable", 422, "Payment method unavailable", "Card payments are not enabled on this market.",
       "Pay by bank transfer.", _ORDERS),
    _p("not-buyer", 403, "Not the buyer", "Only the order's buyer may do this.", "Use the buyer's account.", _ORDERS),
    _p("not-holder", 403, "Not the holder", "Only the listing's holder may do this.", "Use the holder's account.",
       _ORDERS),
    _p("approval-not-required", 409, "No approval needed", "The order needs no approval of this kind.",
       "Nothing to decide.", _ORDERS),
    _p("already-decided", 409, "Already decided", "This approval was decided already.",
       "Read the order for the decision.", _ORDERS),
    _p("no-access", 409, "No access",
       "The order gives no access now: not settled yet, expired or refunded, or the asset or listing is "
       "frozen or revoked by a regulator.",
       "Read the order's status; access resumes if a regulator lifts the freeze.", _ORDERS),
    _p("chunk-out-of-range", 422, "Chunk out of range", "The chunk number is outside the content's chunks.",
       "Ask for a chunk from 0 to (size / chunk_size, rounded up) − 1.", _ORDERS),
    _p("dispute-window-closed", 422, "Dispute window closed",
       "Disputes close MARKET_DISPUTE_WINDOW after settlement, and that time has passed.",
       "Contact the provider or the operator directly.", _ORDERS),
    _p("dispute-open", 409, "Dispute open", "The order has an open dispute already.",
       "Wait for the operator's resolution.", _ORDERS),
    _p("reference-not-expected", 422, "Reference not expected",
       "A reference goes only with a refund sent by bank transfer.",
       "Leave reference out for rejections and card refunds.", _ORDERS),
    # -- money ----------------------------------------------------------------------------
    _p("wrong-payment-method", 422, "Wrong payment method", "The order is not paid by bank transfer.",
       "Confirm only bank-transfer orders here; card payments confirm themselves.", _MONEY),
    _p("amount-mismatch", 422, "Amount mismatch",
       "The transfer received does not equal the order's price (both are named in the detail, with their currency).",
       "Record the exact amount received; if the buyer paid another amount, settle the difference with "
       "the buyer outside the market first.", _MONEY),
    _p("reference-mismatch", 422, "Reference mismatch",
       "The reference the payer quoted on the transfer is not the one this order's payment instructions give "
       "(letters and digits are compared; the expected one is in `expected`).",
       "Check the bank statement: the transfer may be meant for another order. Confirm it on that order, or "
       "leave out `quoted_reference` if the payer quoted none.", _MONEY),
    _p("reference-required", 422, "Bank reference required",
       "A bank transfer is refunded by the operator's bank, outside the market; the refund is recorded only "
       "with the bank's reference of that refund.",
       "Send the refund from the bank first, then resolve the dispute with its `reference`.", _MONEY),
    _p("not-settleable", 409, "The order can no longer be settled",
       "The order cannot be settled any more (cancelled, expired, or its listing or asset changed); the "
       "money received is recorded as owed back to the buyer.",
       "Return the money to the buyer; the detail names the amount and the reference.", _MONEY),
    _p("payment-received", 409, "Payment received",
       "The card payment of this order was already made; the order is being settled and cannot be cancelled.",
       "Wait for the order to become active; to get the money back, open a dispute.", _MONEY),
    _p("payment-declined", 402, "Payment declined", "The payment was declined.",
       "Try another card or payment method.", _MONEY),
    _p("payment-gateway-unavailable", 502, "Payment gateway unavailable",
       "The card payment gateway did not answer or refused; for a refund, the order is refunded and its "
       "access ended, and the money goes back once the gateway answers.",
       "Try again later; operators: check the gateway's status and settings.", _MONEY),
    _p("not-a-provider", 422, "Not a provider", "The account named is not a provider.",
       "Pay out to provider accounts only.", _MONEY),
    _p("payout-not-positive", 422, "Payout not positive", "A payout is of a positive amount.",
       "Record a payout of more than 0.", _MONEY),
    _p("payout-exceeds-due", 422, "Payout exceeds what is due",
       "The payout is more than the provider's statement says is due for the period (due gives the amount).",
       "Pay out at most what is due; read GET /v1/providers/me/statement for the period.", _MONEY),
    _p("bad-period", 422, "Bad period",
       "The period is not a month as YYYY-MM, or from is not before to, or the period is too long.",
       "Give a month like 2026-05, or dates with from before to.", _MONEY),
    # -- oversight ------------------------------------------------------------------------
    _p("bad-date", 422, "Bad date", "A date is not YYYY-MM-DD (UTC).", "Give dates like 2026-05-01.", _OVERSIGHT),
    _p("bad-currency", 422, "Bad currency", "currency is not an ISO 4217 code.", "Give a code like CNY.", _OVERSIGHT),
    _p("bad-status", 422, "Bad status", "status is not one of the order statuses.",
       "Give one of the statuses the detail lists.", _OVERSIGHT),
    _p("bad-filter", 422, "Bad filter", "A filter has a value it does not take.",
       "Give the values the detail names.", _OVERSIGHT),
    _p("unsigned-act", 422, "Unsigned act",
       "A regulator's decision is a signed act: the body must be exactly signing_bytes, key_id and signature.",
       "Draft the act (POST /v1/oversight/acts/draft), sign its bytes with your enrolled key and send them.",
       _REGULATORS),
    _p("invalid-act", 422, "Invalid act", "The act's fields are not valid for its kind.",
       "Correct the field named in the detail and draft again.", _REGULATORS),
    _p("act-mismatch", 422, "Act mismatch",
       "The signed act is of another kind, by another regulator, or about another object than this route.",
       "Draft the act for this route and object, and sign it with your own key.", _REGULATORS),
    _p("act-used", 409, "Act used", "This signed act was accepted before; an act counts once.",
       "Draft a new act for a new decision.", _REGULATORS),
    _p("key-not-enrolled", 422, "Key not enrolled",
       "The key was not enrolled by the regulator authority this market trusts.",
       "Sign with the key of your enrollment.", _REGULATORS),
    # -- notifications --------------------------------------------------------------------
    _p("unknown-event", 422, "Unknown event", "events names no event, or one the market does not send.",
       "Name events from the list, a family such as order.*, or *.", "api#notifications-and-webhooks"),
    _p("webhook-address-not-allowed", 422, "Webhook address not allowed",
       "The webhook URL is not http(s), or points at a loopback or private address.",
       "Give a public https URL of your receiver.", "api#notifications-and-webhooks"),
    # -- ledger ---------------------------------------------------------------------------
    _p("unknown-checkpoint", 409, "Unknown checkpoint", "The cosigned checkpoint is not one the market signed.",
       "Cosign a checkpoint fetched from GET /v1/ledger/checkpoint.", "ledger#4-cosignatures"),
    _p("malformed-note", 422, "Malformed note", "The body is not a UTF-8 signed note in the C2SP format.",
       "Send the checkpoint as served, with your cosignature line appended.", "ledger#3-checkpoints-and-signed-notes"),
    _p("bad-cosignature", 422, "Bad cosignature",
       "The cosignature is by a witness the market does not know (MARKET_LEDGER_WITNESSES), or does not verify.",
       "Sign with the key of a configured witness, over the checkpoint body as served.", "ledger#4-cosignatures"),
    _p("ledger-error", 500, "Ledger error", "The ledger failed while handling the request; the failure is logged.",
       "Try again later; if it persists, tell the operator the X-Request-ID of the response.", "ledger#1-merkle-tree"),
    # -- usage-controlled delivery (docs/usage.md) ----------------------------------------
    _p("table-mismatch", 422, "The description does not fit the content",
       "The table description does not match the registered content: the detail names the first column or cell "
       "that does not fit (a name, a count of columns, a value that is not of its type).",
       "Fix the description (or the content, through a change of the registration) and send it again.", _USAGE),
    _p("content-too-large-for-table", 422, "Content too large for a table",
       "The sandbox holds a table in memory; this content is larger than MARKET_SANDBOX_MAX_CONTENT.",
       "Register the data in smaller assets, or ask the operator about the limit.", _USAGE),
    _p("table-not-described", 409, "No table description",
       "The asset's registered content has no table description checked against it (never described, or a new "
       "revision was registered since).", "The holder describes the table: PUT /v1/assets/{id}/table.", _USAGE),
    _p("table-required", 422, "A table description is needed",
       "Sandbox and api plans work on the asset's table description (api plans on a key column of it).",
       "Describe the table first (PUT /v1/assets/{id}/table), with a key column for api plans.", _USAGE),
    _p("wrong-delivery", 409, "Not delivered this way",
       "The order's plan delivers another way: sandbox and api orders never hand over the content, and only a "
       "sandbox order takes queries, only an api order look-ups.",
       "Use the route of the plan's delivery (content, queries or records).", _USAGE),
    _p("query-not-allowed", 422, "Query not allowed",
       "The query breaks a sandbox rule; `rule` names it and `rule_version` the rules' version. Only aggregates "
       "over the table data, grouped and filtered by dimension columns, are answered.",
       "Rewrite the query within the rules (docs/API.md, usage-controlled delivery) and send it again.", _USAGE),
    _p("query-failed", 422, "Query failed",
       "An allowed query could not be answered: it ran past the time limit, needed more memory than the sandbox "
       "has, or a value could not be read. `reason` says which; no epsilon was spent.",
       "Narrow the query (a filter, fewer groups) and send it again.", _USAGE),
    _p("budget-exhausted", 409, "Privacy budget exhausted",
       "The query would spend more epsilon than the order has left (`epsilon_left`).",
       "Spend less per query (a smaller `epsilon`), or buy another order for a new budget.", _USAGE),
    _p("no-budget", 422, "No budget to spend",
       "The table has no epsilon budget: its answers are exact, and a query gives no `epsilon`.",
       "Leave `epsilon` out.", _USAGE),
    _p("bad-lookup", 422, "Bad look-up",
       "A look-up filters by exactly one key column (`?column=value`) with a value of its type.",
       "Name one key column of the table description and give a value it can hold.", _USAGE),
    _p("quota-exhausted", 429, "Quota used up",
       "The records of this period's quota are used up; the next period renews it (Retry-After says when).",
       "Wait for the next period, or ask the holder for a plan with a larger quota.", _USAGE),
    _p("charge-overdue", 409, "A charge is overdue",
       "A metered period's charge is unpaid past MARKET_POSTPAID_GRACE after the period ended: access stops "
       "until it is paid.", "Pay the charge quoting the period's reference (GET /v1/orders/{id}/usage).", _USAGE),
]

PROBLEM_KINDS: dict[str, ProblemKind] = {p.kind: p for p in _KINDS}
assert len(PROBLEM_KINDS) == len(_KINDS), "a kind is listed twice"

__all__ = ["PROBLEM_KINDS", "ProblemKind"]
