// The pool's time series as uPlot charts: connections, messages per second, health-check
// latency percentiles and the error rate. Every point of the feed is appended to all of
// them; they keep the last MAX_POINTS, and leave a gap where the gateway kept none (its feed
// runs only while someone watches).

import uPlot from "uplot";

import type { Point } from "./types.js";

const MAX_POINTS = 600;
const HEIGHT = 180;
/** Seconds between two points beyond which the charts show a gap (nobody watched). */
const GAP = 5;

interface ChartSpec {
  readonly title: string;
  readonly series: readonly { readonly member: string; readonly label: string; readonly stroke: string }[];
  /** What each figure is multiplied by on the chart (the error rate is shown in percent). */
  readonly factor?: number;
}

const CHARTS: readonly ChartSpec[] = [
  { title: "Connections", series: [{ member: "connections", label: "connections", stroke: "#2563eb" }] },
  {
    title: "Messages per second",
    series: [
      { member: "messagesInPerSecond", label: "in", stroke: "#16a34a" },
      { member: "messagesOutPerSecond", label: "out", stroke: "#9333ea" },
    ],
  },
  {
    title: "Health-check latency (ms)",
    series: [
      { member: "latencyP50", label: "p50", stroke: "#0891b2" },
      { member: "latencyP95", label: "p95", stroke: "#d97706" },
      { member: "latencyP99", label: "p99", stroke: "#dc2626" },
    ],
  },
  {
    title: "Error rate (%)",
    series: [{ member: "errorRate", label: "errors ÷ messages", stroke: "#dc2626" }],
    factor: 100,
  },
];

interface Chart {
  readonly plot: uPlot;
  /** For each series of the chart, where its figure sits in a point. */
  readonly columns: readonly number[];
  readonly factor: number;
  readonly data: (number | null)[][];
}

export class Charts {
  private readonly charts: Chart[] = [];
  private atColumn = 0;

  constructor(private readonly container: HTMLElement) {
    new ResizeObserver(() => this.resize()).observe(container);
  }

  /** Starts the charts over from a history frame (`series` names each point's members). */
  reset(series: readonly string[], points: readonly Point[]): void {
    for (const chart of this.charts) {
      chart.plot.destroy();
    }
    this.charts.length = 0;
    this.atColumn = series.indexOf("at");
    for (const spec of CHARTS) {
      const box = document.createElement("div");
      box.className = "chart";
      box.dataset["chart"] = spec.title;
      this.container.append(box);
      const data: (number | null)[][] = [[], ...spec.series.map(() => [])];
      const plot = new uPlot(
        {
          title: spec.title,
          width: this.width(),
          height: HEIGHT,
          scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), Math.max(max * 1.1, 1)] } },
          series: [{}, ...spec.series.map((s) => ({ label: s.label, stroke: s.stroke, width: 1.5 }))],
          axes: [{}, { size: 60 }],
          legend: { live: false },
        },
        data as uPlot.AlignedData,
        box,
      );
      this.charts.push({
        plot,
        columns: spec.series.map((s) => series.indexOf(s.member)),
        factor: spec.factor ?? 1,
        data,
      });
    }
    for (const point of points) {
      this.append(point, false);
    }
    this.redraw();
  }

  /** Appends one point to every chart and redraws them. */
  add(point: Point): void {
    this.append(point, true);
  }

  /** The latest figure of each series of the chart titled `title` (the tests read it). */
  last(title: string): (number | null)[] {
    const chart = this.charts[CHARTS.findIndex((spec) => spec.title === title)];
    return chart === undefined ? [] : chart.data.slice(1).map((values) => values.at(-1) ?? null);
  }

  /** How many points the charts hold (the tests read it). */
  get length(): number {
    return this.charts[0]?.data[0]?.length ?? 0;
  }

  private append(point: Point, redraw: boolean): void {
    const at = point[this.atColumn] ?? 0;
    for (const chart of this.charts) {
      const previous = chart.data[0]?.at(-1);
      if (typeof previous === "number" && at - previous > GAP) {
        chart.data.forEach((values, index) => values.push(index === 0 ? previous + 1 : null));
      }
      chart.data[0]?.push(at);
      chart.columns.forEach((column, index) => chart.data[index + 1]?.push((point[column] ?? 0) * chart.factor));
      for (const values of chart.data) {
        values.splice(0, Math.max(0, values.length - MAX_POINTS));
      }
    }
    if (redraw) {
      this.redraw();
    }
  }

  private redraw(): void {
    for (const chart of this.charts) {
      chart.plot.setData(chart.data as uPlot.AlignedData);
    }
  }

  /** Two charts side by side, four on a wide screen, one on a narrow one. */
  private width(): number {
    const width = this.container.clientWidth;
    const columns = width >= 1400 ? 4 : width >= 640 ? 2 : 1;
    return Math.floor(width / columns) - 16;
  }

  private resize(): void {
    const width = this.width();
    for (const chart of this.charts) {
      chart.plot.setSize({ width, height: HEIGHT });
    }
  }
}
