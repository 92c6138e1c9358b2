// The admin credential (kept in sessionStorage for this tab only, never in a URL) and the
// REST calls the page makes with it.

const KEY = "wspool.dashboard.credential";

export function credential(): string | null {
  return sessionStorage.getItem(KEY);
}

export function setCredential(value: string | null): void {
  if (value) {
    sessionStorage.setItem(KEY, value);
  } else {
    sessionStorage.removeItem(KEY);
  }
}

/** A REST call the gateway refused: its status and its `{"error": {code, message}}`. */
export class ApiFailure extends Error {
  override readonly name = "ApiFailure";
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
  ) {
    super(`${status} ${code}: ${detail}`);
  }
}

/** Calls the gateway's REST API with the credential, if any; the JSON answer, or ApiFailure. */
export async function api(method: string, path: string, body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = {};
  const shown = credential();
  if (shown) {
    headers["Authorization"] = `Bearer ${shown}`;
  }
  const init: RequestInit = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const answer: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (answer as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiFailure(response.status, error?.code ?? "ERROR", error?.message ?? response.statusText);
  }
  return answer;
}
