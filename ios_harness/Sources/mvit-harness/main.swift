// mvit-harness: times CoreML models (and Core AI .aimodel assets on macOS 27) on this Mac and writes the results JSON (schema_version 1)
// that `mvit-bench report` and `mvit-bench compare` read.
//   swift run -c release mvit-harness model.mlpackage --runs 100 --warmup 10 --out results.json
import Foundation
import MVitBenchCore
#if canImport(CoreML)
import MVitBenchCoreAI
import MVitBenchCoreML
#endif

/// One line on stderr and a non-zero exit: the harness never ends a bad input with a trace.
func fail(_ message: String, code: Int32) -> Never {
    FileHandle.standardError.write(Data("mvit-harness: \(message)\n".utf8))
    exit(code)
}

/// The parsed options, or the help/version text and exit 0, or one error line and exit 2.
func parseOptions(_ arguments: [String]) -> HarnessOptions {
    do {
        switch try HarnessOptions.parse(arguments) {
        case .help:
            print(HarnessOptions.usage)
            exit(0)
        case .version:
            print("\(ToolInfo.harness.name) \(ToolInfo.harness.version)")
            exit(0)
        case .run(let parsed):
            return parsed
        }
    } catch let error as HarnessError {
        fail(error.description, code: 2)
    } catch {
        fail("\(error)", code: 2)
    }
}

let options = parseOptions(Array(CommandLine.arguments.dropFirst()))

#if canImport(CoreML)
/// Times every model and writes the results; exits 1 when any row failed. A function, so its
/// values stay locals rather than top-level globals the progress closure would have to reach.
func runHarness(_ options: HarnessOptions) async -> Never {
    let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    let models = options.modelPaths.map { URL(fileURLWithPath: $0, relativeTo: cwd).standardizedFileURL }
    let outURL = URL(fileURLWithPath: options.outPath, relativeTo: cwd).standardizedFileURL
    let quiet = options.quiet
    do {
        let outcome = try await HarnessRun.run(models: models, plan: options.plan) { line in
            if !quiet { FileHandle.standardError.write(Data("\(line)\n".utf8)) }
        }
        if outcome.report.results.isEmpty {
            fail("no row could run: " + outcome.failures.joined(separator: "; "), code: 1)
        }
        try ResultsFile.write(outcome.report, to: outURL)
        print(ResultsTable.markdown(outcome.report))
        print("wrote \(outURL.path)")
        if !outcome.failures.isEmpty {
            fail("\(outcome.failures.count) row(s) failed: " + outcome.failures.joined(separator: "; "), code: 1)
        }
        exit(0)
    } catch let error as HarnessError {
        fail(error.description, code: 1)
    } catch {
        fail("\(error.localizedDescription)", code: 1)
    }
}

await runHarness(options)
#else
fail("CoreML is not available on this platform; run mvit-harness on macOS (or use the iOS app in ios_harness/App)", code: 1)
#endif
