package deploy

// Tools returns the programs the runtime's build runs, which must be
// installed on the server for the app to deploy (`piku doctor` checks
// them). The Python build makes its virtualenv with python3 -m venv.
func (r Runtime) Tools() []string {
	switch r.Name {
	case "Python":
		return []string{"python3"}
	case "Ruby":
		return []string{"ruby", "bundle"}
	case "Node":
		return []string{"node", "npm"}
	case "Java Maven":
		return []string{"java", "mvn"}
	case "Java Gradle":
		return []string{"java", "gradle"}
	case "Go":
		return []string{"go"}
	case "Clojure CLI":
		return []string{"java", "clojure"}
	case "Clojure Lein":
		return []string{"java", "lein"}
	case "Rust":
		return []string{"cargo"}
	case "PHP":
		return []string{"uwsgi"}
	}
	return nil
}
