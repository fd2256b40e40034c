import MVitBenchCore
import SwiftUI

struct ContentView: View {
    @EnvironmentObject private var harness: HarnessModel

    var body: some View {
        NavigationStack {
            Form {
                modelsSection
                settingsSection
                runSection
                if let report = harness.report {
                    Section("Results (ms)") {
                        ResultsTableView(report: report)
                    }
                }
            }
            .navigationTitle("MobileViT Bench")
            .toolbar {
                if let file = harness.savedFile {
                    ShareLink(item: file) {
                        Label("Share JSON", systemImage: "square.and.arrow.up")
                    }
                }
            }
        }
    }

    private var modelsSection: some View {
        Section {
            if harness.models.isEmpty {
                Text("No models bundled. Run `mvit-export --target coreml --into-harness`, then `xcodegen generate` and build again.")
                    .foregroundStyle(.secondary)
            }
            ForEach(harness.models, id: \.self) { url in
                Toggle(url.lastPathComponent, isOn: binding(for: url))
            }
        } header: {
            Text("Models")
        }
    }

    private var settingsSection: some View {
        Section("Settings") {
            Stepper("Timed runs: \(harness.runs)", value: $harness.runs, in: 1...1000, step: 10)
            Stepper("Warm-up runs: \(harness.warmupRuns)", value: $harness.warmupRuns, in: 0...100)
            ForEach(ComputeUnitSetting.allCases, id: \.self) { setting in
                Toggle(setting.rawValue, isOn: binding(for: setting))
            }
        }
    }

    private var runSection: some View {
        Section {
            Button(harness.isRunning ? "Running…" : "Run benchmark") {
                harness.run()
            }
            .disabled(!harness.canRun)
            Text(harness.status)
                .font(.footnote)
                .foregroundStyle(.secondary)
            if let message = harness.errorMessage {
                Text(message)
                    .font(.footnote)
                    .foregroundStyle(.red)
            }
            if let file = harness.savedFile {
                Text("Documents/\(file.lastPathComponent)")
                    .font(.footnote.monospaced())
                    .textSelection(.enabled)
            }
        }
    }

    private func binding(for url: URL) -> Binding<Bool> {
        Binding(
            get: { harness.selectedModels.contains(url) },
            set: { isOn in
                if isOn { harness.selectedModels.insert(url) } else { harness.selectedModels.remove(url) }
            }
        )
    }

    private func binding(for setting: ComputeUnitSetting) -> Binding<Bool> {
        Binding(
            get: { harness.computeUnits.contains(setting) },
            set: { isOn in
                if isOn { harness.computeUnits.insert(setting) } else { harness.computeUnits.remove(setting) }
            }
        )
    }
}
