import MVitBenchCore
import SwiftUI

/// One block per results row: the paper's figure (mean) first, then the robust ones.
struct ResultsTableView: View {
    let report: BenchmarkReport

    var body: some View {
        Grid(alignment: .trailing, horizontalSpacing: 10, verticalSpacing: 6) {
            GridRow {
                Text("model / units").gridColumnAlignment(.leading)
                Text("mean")
                Text("median")
                Text("p90")
                Text("min")
                Text("std")
            }
            .font(.caption.bold())
            Divider()
            ForEach(ResultsTable.rows(report)) { row in
                GridRow {
                    VStack(alignment: .leading) {
                        Text(row.model).lineLimit(1)
                        Text(row.computeUnits).foregroundStyle(.secondary)
                        if row.vision != "-" {
                            Text("Vision \(row.vision)").foregroundStyle(.secondary)
                        }
                        if row.computePlan != "-" {
                            Text("ops CPU/GPU/ANE \(row.computePlan)").foregroundStyle(.secondary)
                        }
                    }
                    .gridColumnAlignment(.leading)
                    Text(ResultsTable.format(row.stats.meanMs))
                    Text(ResultsTable.format(row.stats.medianMs))
                    Text(ResultsTable.format(row.stats.p90Ms))
                    Text(ResultsTable.format(row.stats.minMs))
                    Text(ResultsTable.format(row.stats.stdMs))
                }
                .font(.caption.monospacedDigit())
            }
        }
        Text(machineLine)
            .font(.footnote)
            .foregroundStyle(.secondary)
    }

    private var machineLine: String {
        let machine = report.machine
        let thermal = machine.thermalState ?? "unknown"
        let lowPower = machine.lowPowerMode.map { $0 ? "on" : "off" } ?? "unknown"
        return "\(machine.deviceModel), \(machine.os) \(machine.osVersion), thermal \(thermal), low power \(lowPower)"
    }
}
