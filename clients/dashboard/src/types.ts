// The frames of the gateway's dashboard feed (/api/v1/dashboard/feed), as
// src/wspool/gateway/model/dashboard.py writes them.

/** One sample of every chart, in the order the history frame's `series` names. */
export type Point = readonly number[];

export interface NodeRow {
  readonly id: string;
  readonly url: string;
  readonly healthy: boolean;
  readonly circuit: "closed" | "open" | "half-open";
  readonly weight: number;
  /** Slow-start factor now, 0 to 1. */
  readonly ramp: number;
  readonly draining: boolean;
  readonly connections: number;
  readonly messagesInPerSecond: number;
  readonly messagesOutPerSecond: number;
  readonly latencyMs: number | null;
}

export interface Snapshot {
  readonly type: "snapshot";
  readonly gateway: {
    readonly id: string;
    readonly replicas: number;
    readonly store: "up" | "down";
    readonly relayedConnections: number;
    /** Changes need no credential (an --insecure gateway, such as wspool dev's). */
    readonly writesOpen: boolean;
  };
  readonly config: { readonly strategy: string } & Record<string, unknown>;
  readonly pool: {
    readonly totalConnections: number;
    readonly maxConnections: number;
    readonly activeServers: number;
    readonly totalServers: number;
  };
  readonly nodes: readonly NodeRow[];
  readonly point: Point;
}

export interface History {
  readonly type: "history";
  readonly series: readonly string[];
  readonly points: readonly Point[];
}

export type Frame = Snapshot | History;
