/// A user-facing failure: the description is one line saying what was wrong and what to do.
public enum HarnessError: Error, CustomStringConvertible, Equatable, Sendable {
    case invalidArgument(String)
    case invalidInput(String)
    case unsupportedModel(String)
    case platformUnavailable(String)
    case io(String)

    public var description: String {
        switch self {
        case .invalidArgument(let message), .invalidInput(let message),
             .unsupportedModel(let message), .platformUnavailable(let message),
             .io(let message):
            return message
        }
    }
}
