import SwiftUI

@main
struct MVitHarnessApp: App {
    @StateObject private var harness = HarnessModel()

    var body: some Scene {
        WindowGroup {
            ContentView()
                .environmentObject(harness)
        }
    }
}
